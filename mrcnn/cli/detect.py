"""``mrcnn detect``: detect instances in images, folders, globs and videos.

    mrcnn detect --config myconfig:MyConfig --weights last --output out/ photos/ clip.mp4

Writes into --output:
    <image>.png               each image with its detections drawn (visualize.display_instances)
    <video>.mp4               each video with its detections drawn (every --every-nth-frame
                              frame; --video-output frames writes <video>/frame_<k>.png)
    results.json              the detections as a COCO results list: "image_id",
                              "category_id", "bbox" [x, y, w, h] px, "score",
                              "segmentation" (compressed RLE) and, for a keypoint model,
                              "keypoints" [x1, y1, s1, ...] (s the keypoint score);
                              pycocotools' loadRes reads it (mrcnn.datasets.coco_results)
    images.json               COCO "images" (id, file_name, height, width, and "frame" for
                              video frames) and "categories" of those ids
    masks/<name>_<k>_<class>.png   one binary mask per detection, with --save-masks
                              (not for a keypoint-only model, which has no masks)

Class names and category ids come from --classes or the classes.json that ``mrcnn train``
wrote beside the checkpoint. Images are detected in batches of the config's
IMAGES_PER_GPU (--batch-size); video frames are read one at a time.

Keypoint models: NUM_KEYPOINTS, KEYPOINT_NAMES and the keypoint head's sizes come from
the config stored in the checkpoint unless the config or --set gives them. Pictures and
video frames show each detection's keypoints, joined by the skeleton of --classes or
classes.json where it has one. A keypoint-only model (KEYPOINT_WITH_MASKS False) has no
masks: results.json holds its boxes, classes, scores and keypoints without
"segmentation", and the pictures show boxes and keypoints.
"""
import json
import os

from mrcnn.cli import classes, common, media, settings, weights
from mrcnn.cli.errors import CliError

HELP = "detect instances in images, folders and videos; save pictures and COCO JSON"


def add_parser(subparsers, formatter):
    parser = subparsers.add_parser("detect", help=HELP, description=__doc__,
                                   formatter_class=formatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders of images/videos, glob patterns "
                             "('photos/*.jpg') or video files")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="folder for the pictures, videos and JSON files")
    settings.add_config_arguments(parser)
    weights.add_weights_argument(parser)
    parser.add_argument("--min-confidence", type=float, metavar="P",
                        help="keep detections scoring at least P (the config's "
                             "DETECTION_MIN_CONFIDENCE by default)")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="images per detect() call (default: the config's IMAGES_PER_GPU)")
    parser.add_argument("--every-nth-frame", type=int, default=1, metavar="N",
                        help="videos: detect every N-th frame (default 1: every frame)")
    parser.add_argument("--video-output", choices=("video", "frames", "none"), default="video",
                        help="videos: an annotated video file (default), annotated frame "
                             "PNGs, or nothing but the JSON")
    parser.add_argument("--save-masks", action="store_true",
                        help="also write one binary PNG per detected instance")
    parser.add_argument("--no-pictures", action="store_true",
                        help="images: write only the JSON (and masks), no pictures")
    parser.add_argument("--classes", metavar="FILE",
                        help="class names: a classes.json of 'mrcnn train', a COCO annotation "
                             "file or a JSON list (default: classes.json beside the weights)")
    parser.set_defaults(run=run)
    return parser


def _configure(args):
    config, fixed = settings.load_config(args)
    if args.min_confidence is not None:
        if not 0 <= args.min_confidence <= 1:
            raise CliError(f"--min-confidence {args.min_confidence}: must lie in [0, 1]")
        config.DETECTION_MIN_CONFIDENCE = args.min_confidence
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise CliError(f"--batch-size {args.batch_size}: must be at least 1")
        config.IMAGES_PER_GPU = args.batch_size
    if args.every_nth_frame < 1:
        raise CliError(f"--every-nth-frame {args.every_nth_frame}: must be at least 1")
    return config, fixed


class Outputs:
    """Everything detect writes: pictures, videos, masks and the two JSON files."""

    def __init__(self, args, class_names, category_ids, skeleton=()):
        self.args = args
        self.folder = args.output
        self.class_names = class_names
        self.category_ids = category_ids
        self.skeleton = tuple(skeleton)
        self.colors = media.class_colors(len(class_names))
        self.images, self.results = [], []
        self.dataset = self._results_dataset()
        self.videos = {}
        self._stems = set()
        os.makedirs(self.folder, exist_ok=True)

    def stem(self, path):
        return media.unique_stem(path, self._stems)

    def category_of(self, class_id):
        if self.category_ids and self.category_ids[int(class_id)] is not None:
            return int(self.category_ids[int(class_id)])
        return int(class_id)

    def _results_dataset(self):
        """A Dataset of the class names and category ids, to which add() appends each
        image (COCO id 1, 2, ...), for mrcnn.datasets.coco_results."""
        from mrcnn.dataset import Dataset

        dataset = Dataset()
        ids = [self.category_of(c) for c in range(1, len(self.class_names))]
        if len(set(ids)) != len(ids):    # ids that are not distinct: the class ids
            ids = list(range(1, len(self.class_names)))
        for class_id, name in zip(ids, self.class_names[1:]):
            dataset.add_class("detect", class_id, name)
        return dataset

    def add(self, item, image, result):
        """Record one image's (or frame's) detections and write its picture / frame."""
        from mrcnn.datasets import coco_results

        image_id = len(self.images) + 1
        record = {"id": image_id, "file_name": item["path"],
                  "height": int(image.shape[0]), "width": int(image.shape[1])}
        name = item["stem"]
        if item["frame"] is not None:
            record["frame"] = item["frame"]
            name = f"{item['stem']}_frame_{item['frame']:06d}"
        self.images.append(record)
        self.dataset.add_image("detect", image_id, item["path"])
        self.results.extend(coco_results([result], self.dataset,
                                         [len(self.dataset.image_info) - 1]))
        if self.args.save_masks:
            media.save_masks(os.path.join(self.folder, "masks"), name, result,
                             self.class_names)
        if item["frame"] is None:
            if not self.args.no_pictures:
                media.save_picture(os.path.join(self.folder, f"{name}.png"), image, result,
                                   self.class_names, self.colors, self.skeleton)
            return
        self._add_frame(item, image, result)

    def _add_frame(self, item, image, result):
        mode = self.args.video_output
        if mode == "none":
            return
        drawn = media.draw_detections(image, result, self.class_names, self.colors,
                                      self.skeleton)
        if mode == "frames":
            from PIL import Image

            folder = os.path.join(self.folder, item["stem"])
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(drawn).save(os.path.join(folder, f"frame_{item['frame']:06d}.png"))
            return
        writer = self.videos.get(item["stem"])
        if writer is None:
            writer = media.VideoWriter(os.path.join(self.folder, f"{item['stem']}.mp4"),
                                       item["fps"] / self.args.every_nth_frame)
            self.videos[item["stem"]] = writer
        writer.write(drawn)

    def close(self):
        for writer in self.videos.values():
            writer.close()
        from mrcnn.datasets import coco_category_ids

        ids = coco_category_ids(self.dataset)
        categories = [{"id": ids[c], "name": self.class_names[c]}
                      for c in range(1, len(self.class_names))]
        with open(os.path.join(self.folder, "results.json"), "w", encoding="utf-8") as f:
            json.dump(self.results, f)
        with open(os.path.join(self.folder, "images.json"), "w", encoding="utf-8") as f:
            json.dump({"images": self.images, "categories": categories}, f, indent=1)


def _check_masks(args, config):
    """CliError for --save-masks with a model that has no masks (keypoint-only)."""
    from mrcnn.coco_eval import has_masks

    if args.save_masks and not has_masks(config):
        raise CliError("--save-masks: the model has no masks (a keypoint-only model, "
                       "KEYPOINT_WITH_MASKS False); leave the option out")


def _items(inputs, outputs, every_nth):
    """(item, RGB image) for every image and selected video frame, read one at a time."""
    for path, kind in inputs:
        stem = outputs.stem(path)
        if kind == "image":
            yield {"path": path, "stem": stem, "frame": None}, media.read_image(path)
            continue
        frames = media.VideoFrames(path, every_nth)
        for index, frame in frames:
            yield {"path": path, "stem": stem, "frame": index, "fps": frames.fps}, frame


def _expected_count(inputs, every_nth):
    """Images plus the video frames OpenCV announces (None when a video does not say)."""
    total = 0
    for path, kind in inputs:
        if kind == "image":
            total += 1
            continue
        count = media.VideoFrames(path, every_nth).selected_count()
        if not count:
            return None
        total += count
    return total


def _batches(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run(args):
    inputs = media.expand_inputs(args.inputs)
    config, fixed = _configure(args)
    weights_file = weights.weights_path(args.weights, config, args.logs)
    model = common.inference_model(args, config, fixed, weights_file)
    _check_masks(args, model.config)
    class_names, category_ids = classes.class_names_for(args, weights_file,
                                                        config.NUM_CLASSES)
    skeleton = classes.skeleton_for(args, weights_file, config.NUM_KEYPOINTS)
    outputs = Outputs(args, class_names, category_ids, skeleton)
    import keras

    progress = keras.utils.Progbar(_expected_count(inputs, args.every_nth_frame),
                                   unit_name="image")
    done = detections = 0
    try:
        for batch in _batches(_items(inputs, outputs, args.every_nth_frame),
                              config.BATCH_SIZE):
            results = model.detect([image for _, image in batch])
            for (item, image), result in zip(batch, results):
                outputs.add(item, image, result)
                detections += len(result["class_ids"])
            done += len(batch)
            progress.update(done)
    finally:
        outputs.close()
    print(f"\n{detections} detections in {done} images/frames; results in "
          f"{os.path.join(args.output, 'results.json')}")
    return 0
