"""``mrcnn evaluate``: mAP and the COCO metrics of a model on an annotated data set.

    mrcnn evaluate --config myconfig:MyConfig --weights last \\
        --coco val.json --images val/ --json metrics.json

Prints upstream's mAP@0.5 and mAP@[0.5:0.95] (mean over images of utils.compute_ap,
mask IoU; see mrcnn.evaluate), a per-class table, and the twelve COCO metrics of
pycocotools for boxes and masks (see mrcnn.coco_eval). The model runs once over the
images for all of them. --json writes the same numbers to a file.

Keypoints: a keypoint model (NUM_KEYPOINTS and the head's settings come from the
checkpoint's stored config unless the config or --set gives them) on a COCO file with
the same keypoints also gets COCO's ten OKS keypoint metrics (AP, AP50, AP75, ...; see
mrcnn.keypoint_eval), "keypoints" in --json. OKS needs one sigma per keypoint: COCO's
person sigmas for 17 keypoints, else --keypoint-sigmas (one value for all, or K).

A keypoint-only model (KEYPOINT_WITH_MASKS False) has no masks: upstream's mAP (mask IoU)
and COCO's "segm" metrics are left out (evaluate says so), the per-class table counts
instances and detections, and the COCO metrics are those of the boxes ("bbox") and the
keypoints; --json then holds "mask_metrics_left_out" (the reason) instead of the mAP
figures.
"""
import json
import math

from mrcnn.cli import common, data, settings, weights
from mrcnn.cli.errors import CliError

HELP = "mAP@0.5 and COCO metrics (bbox, segm, keypoints) on an annotated data set"


def add_parser(subparsers, formatter):
    parser = subparsers.add_parser("evaluate", help=HELP, description=__doc__,
                                   formatter_class=formatter)
    data.add_dataset_arguments(parser)
    settings.add_config_arguments(parser)
    weights.add_weights_argument(parser)
    parser.add_argument("--limit", type=int, metavar="N",
                        help="evaluate the first N images only")
    parser.add_argument("--min-confidence", type=float, metavar="P",
                        help="DETECTION_MIN_CONFIDENCE for the evaluation (default: the "
                             "config's; COCO's AP counts low-scoring detections too)")
    parser.add_argument("--keypoint-sigmas", metavar="S[,S,...]",
                        help="keypoint models: the OKS sigma of each keypoint, or one for "
                             "all (default: COCO's person sigmas for 17 keypoints; needed "
                             "for other keypoint sets)")
    parser.add_argument("--json", metavar="FILE", dest="json_path",
                        help="also write the metrics to this JSON file")
    parser.set_defaults(run=run)
    return parser


class RecordingModel:
    """Stands in for the model in evaluate_map: runs it and keeps each image's detections
    as COCO result dicts (RLE masks where the model has them; keypoint results apart), so
    the COCO metrics need no second pass. ``detection_count`` counts the detections of
    each class id.

    image_ids: the internal image ids in the order evaluate_map detects them.
    """

    def __init__(self, model, image_ids):
        self.model = model
        self.config = model.config
        self.image_ids = list(image_ids)
        self.coco_results = []
        self.keypoint_results = []
        self.detection_count = {}
        self._next = 0

    def detect(self, images, verbose=0):
        from mrcnn.coco_eval import detections_to_coco
        from mrcnn.keypoint_eval import keypoints_to_coco

        results = self.model.detect(images, verbose=verbose)
        for result in results:
            image_id = int(self.image_ids[self._next])
            self.coco_results.extend(detections_to_coco(image_id, result))
            if "keypoints" in result:
                self.keypoint_results.extend(keypoints_to_coco(image_id, result))
            for class_id in result["class_ids"]:
                self.detection_count[int(class_id)] = \
                    self.detection_count.get(int(class_id), 0) + 1
            self._next += 1
        return results


def _parse_sigmas(text):
    """--keypoint-sigmas 'S' or 'S1,S2,...' -> list of floats (None when not given)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(v > 0 for v in values):
        raise CliError(f"--keypoint-sigmas {text}: expected positive numbers, one or one "
                       f"per keypoint (e.g. 0.1 or 0.026,0.025,0.035)")
    return values


def keypoint_plan(args, config, dataset):
    """(sigmas [K], None) when the keypoint metrics can be computed, (None, reason) when
    they are left out; CliError when the model's and the data set's keypoints differ."""
    from mrcnn import keypoints as keypoint_module
    from mrcnn.datasets import has_keypoints

    model_count = int(config.NUM_KEYPOINTS or 0)
    data_names = getattr(dataset, "keypoint_names", None)
    data_count = len(data_names) if data_names else (1 if has_keypoints(dataset) else 0)
    if not model_count:
        return None, ("the data set has keypoints but the model has none (NUM_KEYPOINTS 0)"
                      if data_count else None)
    if not data_count:
        return None, (f"the model has {model_count} keypoints but the data set has none "
                      f"(a COCO file with categories' 'keypoints' names)")
    if data_names and len(data_names) != model_count:
        raise CliError(f"the model has NUM_KEYPOINTS = {model_count} but the data set has "
                       f"{len(data_names)} keypoints: {list(data_names)}")
    if data_names and config.KEYPOINT_NAMES is not None \
            and list(config.KEYPOINT_NAMES) != list(data_names):
        raise CliError(f"the model's KEYPOINT_NAMES {list(config.KEYPOINT_NAMES)} differ "
                       f"from the data set's keypoints {list(data_names)} (same order "
                       f"needed)")
    sigmas = _parse_sigmas(args.keypoint_sigmas)
    if sigmas is not None and len(sigmas) == 1:
        sigmas = sigmas * model_count
    try:
        return [float(v) for v in keypoint_module.keypoint_sigmas(model_count, sigmas)], None
    except ValueError as error:
        if sigmas is not None:
            raise CliError(f"--keypoint-sigmas {args.keypoint_sigmas}: {error}") from None
        return None, (f"OKS needs one sigma per keypoint and COCO's are for 17; pass "
                      f"--keypoint-sigmas S (all {model_count}) or S1,...,S{model_count}")


def keypoint_report(dataset, image_ids, results, sigmas):
    """COCO's ten OKS keypoint metrics of ``results`` (COCO keypoint result dicts with
    internal ids) against the data set's keypoints; prints COCOeval's table."""
    from mrcnn.keypoint_eval import dataset_to_coco_keypoints, keypoint_metrics

    coco_gt = dataset_to_coco_keypoints(
        dataset, image_ids, keypoint_names=getattr(dataset, "keypoint_names", None),
        skeleton=getattr(dataset, "keypoint_skeleton", None))
    print(f"\nCOCO metrics (keypoints, OKS sigmas {[round(s, 4) for s in sigmas]}):")
    metrics = keypoint_metrics(coco_gt, results, sigmas, image_ids, verbose=True)
    print(f"Keypoint AP = {metrics['AP']:.3f}   AP50 = {metrics['AP50']:.3f}   "
          f"AP75 = {metrics['AP75']:.3f}")
    return metrics


def _plain(value):
    return None if isinstance(value, float) and math.isnan(value) else value


MASKS_LEFT_OUT = ("the model has no masks (a keypoint-only model, KEYPOINT_WITH_MASKS "
                  "False): no mAP of mask IoU, no segm metrics")


def mask_report(recorder, dataset, image_ids):
    """Upstream's mAP (mask IoU) over ``image_ids``, printed with its per-class table;
    the model runs through ``recorder``. Returns the --json entries."""
    from mrcnn import visualize
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map, per_class_table

    result = evaluate_map(recorder, dataset, image_ids, iou_thresholds=COCO_IOU_THRESHOLDS,
                          verbose=1)
    print(f"\nmAP@0.5 = {result['mAP'][0.5]:.3f}   mAP@[0.5:0.95] = "
          f"{result['mAP_range']:.3f}   ({len(image_ids)} images)")
    visualize.display_table(per_class_table(result, dataset.class_names))
    return {"mAP@0.5": _plain(result["mAP"][0.5]),
            "mAP@[0.5:0.95]": _plain(result["mAP_range"]),
            "mAP": {f"{t:.2f}": _plain(v) for t, v in result["mAP"].items()},
            "per_class_AP@0.5": {dataset.class_names[c]: _plain(v)
                                 for c, v in result["per_class"][0.5].items()},
            "instances": {dataset.class_names[c]: n
                          for c, n in sorted(result["gt_count"].items())},
            "detections": {dataset.class_names[c]: n
                           for c, n in sorted(result["detection_count"].items())}}


def count_report(recorder, dataset, image_ids):
    """A model without masks: runs it over ``image_ids`` through ``recorder`` and prints
    a table of the instances (non-crowd, non-empty, as evaluate_map counts them) and the
    detections of each class. Returns the --json entries."""
    from mrcnn import visualize
    from mrcnn.evaluate import detect_dataset, ground_truth

    for _ in detect_dataset(recorder, dataset, image_ids, verbose=1):
        pass
    instances = {}
    for image_id in image_ids:
        _, class_ids, masks = ground_truth(dataset, image_id)
        for class_id in class_ids[masks.any(axis=(0, 1))]:
            instances[int(class_id)] = instances.get(int(class_id), 0) + 1
    detections = recorder.detection_count
    rows = [["class", "instances", "detections"]]
    for class_id in sorted(set(instances) | set(detections)):
        rows.append([dataset.class_names[class_id], instances.get(class_id, 0),
                     detections.get(class_id, 0)])
    print(f"\n{sum(detections.values())} detections in {len(image_ids)} images")
    visualize.display_table(rows)
    return {"instances": {dataset.class_names[c]: n for c, n in sorted(instances.items())},
            "detections": {dataset.class_names[c]: n
                           for c, n in sorted(detections.items())}}


def run(args):
    from mrcnn.coco_eval import IOU_TYPES, coco_metrics, dataset_to_coco, has_masks

    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit {args.limit}: must be at least 1")
    config, fixed = settings.load_config(args)
    dataset = data.load_dataset(args)
    if dataset is None:
        raise CliError("no data to evaluate on: give --coco ANN.json --images DIR, "
                              "--via FILE --images DIR, --labelme DIR or --masks IMAGES_DIR "
                              "MASKS_DIR")
    print(f"Data: {data.describe(dataset)}")
    if args.min_confidence is not None:
        config.DETECTION_MIN_CONFIDENCE = args.min_confidence
    if fixed and config.NUM_CLASSES != dataset.num_classes:
        raise CliError(f"NUM_CLASSES is {config.NUM_CLASSES} in {args.config} but the "
                              f"data set has {dataset.num_classes} classes (background "
                              f"included): {list(dataset.class_names)}")
    weights_file = weights.weights_path(args.weights, config, args.logs)
    model = common.inference_model(args, config, fixed, weights_file,
                                   class_count=dataset.num_classes)
    sigmas, skipped = keypoint_plan(args, model.config, dataset)
    if skipped:
        print(f"Keypoint metrics left out: {skipped}")
    with_masks = has_masks(model.config)
    if not with_masks:
        print(f"Mask metrics left out: {MASKS_LEFT_OUT}")
    image_ids = list(dataset.image_ids)
    if args.limit is not None:
        image_ids = image_ids[:args.limit]
    recorder = RecordingModel(model, image_ids)
    if with_masks:
        figures = mask_report(recorder, dataset, image_ids)
    else:
        figures = count_report(recorder, dataset, image_ids)
    coco_gt = dataset_to_coco(dataset, image_ids)
    coco = {}
    for iou_type in IOU_TYPES if with_masks else ("bbox",):
        print(f"\nCOCO metrics ({iou_type}):")
        coco[iou_type] = coco_metrics(coco_gt, recorder.coco_results, iou_type, image_ids,
                                      verbose=True)
    if not with_masks:
        box = coco["bbox"]
        print(f"Box AP = {box['AP']:.3f}   AP50 = {box['AP50']:.3f}   "
              f"AP75 = {box['AP75']:.3f}")
    if sigmas is not None:
        coco["keypoints"] = keypoint_report(dataset, image_ids, recorder.keypoint_results,
                                            sigmas)
    if args.json_path:
        report = {"images": len(image_ids), **figures, "coco": coco,
                  "weights": weights_file}
        if not with_masks:
            report["mask_metrics_left_out"] = MASKS_LEFT_OUT
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        print(f"\nMetrics written to {args.json_path}")
    return 0
