"""``mrcnn evaluate``: mAP and the COCO metrics of a model on an annotated data set.

    mrcnn evaluate --config myconfig:MyConfig --weights last \\
        --coco val.json --images val/ --json metrics.json

Prints upstream's mAP@0.5 and mAP@[0.5:0.95] (mean over images of utils.compute_ap,
mask IoU; see mrcnn.evaluate), a per-class table, and the twelve COCO metrics of
pycocotools for boxes and masks (see mrcnn.coco_eval). The model runs once over the
images for all of them. --json writes the same numbers to a file.
"""
import json
import math

from mrcnn.cli import common, data, settings, weights
from mrcnn.cli.errors import CliError

HELP = "mAP@0.5 and COCO metrics (bbox, segm) on an annotated data set"


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
    parser.add_argument("--json", metavar="FILE", dest="json_path",
                        help="also write the metrics to this JSON file")
    parser.set_defaults(run=run)
    return parser


class RecordingModel:
    """Stands in for the model in evaluate_map: runs it and keeps each image's detections
    as COCO result dicts (RLE masks), so the COCO metrics need no second pass.

    image_ids: the internal image ids in the order evaluate_map detects them.
    """

    def __init__(self, model, image_ids):
        self.model = model
        self.config = model.config
        self.image_ids = list(image_ids)
        self.coco_results = []
        self._next = 0

    def detect(self, images, verbose=0):
        from mrcnn.coco_eval import detections_to_coco

        results = self.model.detect(images, verbose=verbose)
        for result in results:
            self.coco_results.extend(
                detections_to_coco(int(self.image_ids[self._next]), result))
            self._next += 1
        return results


def _plain(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def run(args):
    from mrcnn import visualize
    from mrcnn.coco_eval import IOU_TYPES, coco_metrics, dataset_to_coco
    from mrcnn.evaluate import COCO_IOU_THRESHOLDS, evaluate_map, per_class_table

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
    image_ids = list(dataset.image_ids)
    if args.limit is not None:
        image_ids = image_ids[:args.limit]
    recorder = RecordingModel(model, image_ids)
    result = evaluate_map(recorder, dataset, image_ids, iou_thresholds=COCO_IOU_THRESHOLDS,
                          verbose=1)
    print(f"\nmAP@0.5 = {result['mAP'][0.5]:.3f}   mAP@[0.5:0.95] = "
          f"{result['mAP_range']:.3f}   ({len(image_ids)} images)")
    visualize.display_table(per_class_table(result, dataset.class_names))
    coco_gt = dataset_to_coco(dataset, image_ids)
    coco = {}
    for iou_type in IOU_TYPES:
        print(f"\nCOCO metrics ({iou_type}):")
        coco[iou_type] = coco_metrics(coco_gt, recorder.coco_results, iou_type, image_ids,
                                      verbose=True)
    if args.json_path:
        report = {"images": len(image_ids),
                  "mAP@0.5": _plain(result["mAP"][0.5]),
                  "mAP@[0.5:0.95]": _plain(result["mAP_range"]),
                  "mAP": {f"{t:.2f}": _plain(v) for t, v in result["mAP"].items()},
                  "per_class_AP@0.5": {dataset.class_names[c]: _plain(v)
                                       for c, v in result["per_class"][0.5].items()},
                  "instances": {dataset.class_names[c]: n
                                for c, n in sorted(result["gt_count"].items())},
                  "detections": {dataset.class_names[c]: n
                                 for c, n in sorted(result["detection_count"].items())},
                  "coco": coco, "weights": weights_file}
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        print(f"\nMetrics written to {args.json_path}")
    return 0
