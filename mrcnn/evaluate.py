"""Dataset-level evaluation: mean average precision with upstream's per-image AP.

`evaluate_map` runs `model.detect` over a dataset's images in batches and averages
`utils.compute_ap` (VOC all-point interpolation, mask IoU) over the images, as upstream's
notebooks did. Ground truth is taken at the original image resolution.
"""
import numpy as np

from mrcnn import utils


def ground_truth(dataset, image_id):
    """(boxes int32 [N, 4], class_ids int32 [N], masks bool [H, W, N]) of one image.

    Crowd instances (negative class ids) are left out, as upstream's AP ignores them.
    """
    masks, class_ids = dataset.load_mask(image_id)
    keep = class_ids > 0
    masks, class_ids = masks[..., keep], class_ids[keep]
    return utils.extract_bboxes(masks), class_ids.astype(np.int32), masks


def evaluate_map(model, dataset, image_ids=None, iou_thresholds=(0.5,), batch_size=None,
                 verbose=0):
    """Mean over images of upstream's per-image AP, for each IoU threshold.

    Args:
        model: a MaskRCNN in inference mode.
        dataset: a prepared Dataset.
        image_ids: images to evaluate (all by default).
        iou_thresholds: mask-IoU thresholds; the result has one mAP per threshold.
        batch_size: images per detect() call (default: the model's BATCH_SIZE).
    Returns:
        dict with "mAP" {threshold: mean AP}, "per_image" {threshold: [AP per image]},
        "image_ids" in order.
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    batch_size = batch_size or model.config.BATCH_SIZE
    per_image = {float(t): [] for t in iou_thresholds}
    for start in range(0, len(image_ids), batch_size):
        batch_ids = image_ids[start:start + batch_size]
        images = [dataset.load_image(i) for i in batch_ids]
        results = model.detect(images)
        for image_id, result in zip(batch_ids, results):
            gt_boxes, gt_class_ids, gt_masks = ground_truth(dataset, image_id)
            for threshold in per_image:
                ap, _, _, _ = utils.compute_ap(
                    gt_boxes, gt_class_ids, gt_masks, result["rois"], result["class_ids"],
                    result["scores"], result["masks"], iou_threshold=threshold)
                per_image[threshold].append(float(ap))
        if verbose:
            done = min(start + batch_size, len(image_ids))
            print(f"\revaluated {done}/{len(image_ids)} images", end="", flush=True)
    if verbose:
        print()
    return {"mAP": {t: float(np.mean(v)) if v else 0.0 for t, v in per_image.items()},
            "per_image": per_image, "image_ids": image_ids}
