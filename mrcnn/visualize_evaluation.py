"""Pictures of mrcnn.evaluation_curves: confusion matrix, precision-recall, F1 by threshold.

Like mrcnn.visualize, each function draws on `ax` (a new figure when None), returns the
Axes, and writes the figure to `save_path` when given (headless with matplotlib's Agg):

    records = evaluation_curves.collect_records(model, dataset)
    plot_confusion_matrix(evaluation_curves.confusion_matrix(records, dataset.num_classes),
                          dataset.class_names, save_path="confusion.png")
    plot_precision_recall_curves(evaluation_curves.precision_recall_curves(records),
                                 dataset.class_names)
    plot_f1_by_threshold(evaluation_curves.f1_by_score_threshold(records))
"""
import numpy as np

from mrcnn.visualize import _finish, _new_axes


def _label(class_names, class_id):
    if class_names is not None and 0 <= class_id < len(class_names):
        return str(class_names[class_id])
    return str(class_id)


def plot_confusion_matrix(matrix, class_names=None, normalize=False, ax=None,
                          save_path=None, figsize=(7, 6)):
    """Draw a confusion matrix from evaluation_curves.confusion_matrix.

    Rows are true classes, columns predicted classes; index 0 is background: row 0 holds
    the false positives, column 0 the missed ground truths.

    Args:
        matrix: int [NC, NC].
        class_names: dataset.class_names (index = class id); None: the ids.
        normalize: colour (and print) each row as fractions of its sum.
    Returns:
        the Axes.
    """
    matrix = np.asarray(matrix)
    created = ax is None
    ax = _new_axes(figsize) if created else ax
    shown = matrix.astype(np.float64)
    if normalize:
        sums = shown.sum(axis=1, keepdims=True)
        shown = np.divide(shown, sums, out=np.zeros_like(shown), where=sums > 0)
    image = ax.imshow(shown, cmap="Blues", vmin=0)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    count = len(matrix)
    names = [_label(class_names, i) for i in range(count)]
    ax.set_xticks(range(count), ["missed"] + names[1:], rotation=45, ha="right")
    ax.set_yticks(range(count), ["false positive"] + names[1:])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    limit = shown.max() if shown.size else 0
    for row in range(count):
        for column in range(count):
            if row == 0 and column == 0:
                continue
            text = f"{shown[row, column]:.2f}" if normalize else str(int(matrix[row, column]))
            colour = "white" if limit and shown[row, column] > limit / 2 else "black"
            ax.text(column, row, text, ha="center", va="center", color=colour, fontsize=9)
    ax.set_title("Confusion matrix" + (" (rows normalised)" if normalize else ""))
    _finish(ax.figure, created, save_path, show=False)
    return ax


def plot_precision_recall_curves(curves, class_names=None, ax=None, save_path=None,
                                 figsize=(7, 6)):
    """One precision-recall curve per class, its AP in the legend.

    Args:
        curves: the dict of evaluation_curves.precision_recall_curves.
        class_names: dataset.class_names; None: the ids.
    Returns:
        the Axes.
    """
    created = ax is None
    ax = _new_axes(figsize) if created else ax
    for class_id, curve in sorted(curves.items()):
        recall = np.concatenate([[0.0], curve["recall"]])
        precision = np.concatenate([[1.0], curve["precision"]])
        ax.step(recall, precision, where="post",
                label=f"{_label(class_names, class_id)} (AP {curve['ap']:.3f})")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall per class")
    if curves:
        ax.legend(loc="lower left")
    _finish(ax.figure, created, save_path, show=False)
    return ax


def plot_f1_by_threshold(result, ax=None, save_path=None, figsize=(7, 4.5)):
    """F1, precision and recall against the score threshold, the best F1 marked.

    Args:
        result: the dict of evaluation_curves.f1_by_score_threshold.
    Returns:
        the Axes.
    """
    created = ax is None
    ax = _new_axes(figsize) if created else ax
    thresholds = result["thresholds"]
    ax.plot(thresholds, result["f1"], label="F1", linewidth=2)
    ax.plot(thresholds, result["precision"], label="precision", linestyle="--")
    ax.plot(thresholds, result["recall"], label="recall", linestyle=":")
    best, best_f1 = result["best_threshold"], result["best_f1"]
    if np.isfinite(best):
        ax.axvline(best, color="grey", linewidth=1)
        ax.plot([best], [best_f1], "o", color="red",
                label=f"best F1 {best_f1:.3f} at score {best:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("score threshold")
    ax.set_ylabel("value")
    ax.set_title("F1 against the score threshold")
    ax.legend(loc="lower left")
    _finish(ax.figure, created, save_path, show=False)
    return ax
