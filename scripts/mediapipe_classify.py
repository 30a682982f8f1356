"""Classifies images with MediaPipe Tasks' ImageClassifier, loading an
xcept .tflite through its TFLite Model Metadata (the MediaPipe test runs it
with .venv-mediapipe's python; not part of xcept's own venv).

    mediapipe_classify.py --model FILE.tflite IMAGE...

Prints one JSON line first with the metadata MediaPipe's displayer reads
back ({"metadata": {...}, "labels": [...]}), then one line per image:
{"file": PATH, "class": NAME, "index": I, "score": P}.
"""

import argparse
import json
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("images", nargs="+")
    args = p.parse_args()

    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from mediapipe.tasks.python.metadata import metadata

    displayer = metadata.MetadataDisplayer.with_model_file(args.model)
    files = displayer.get_packed_associated_file_list()
    labels = []
    for name in files:
        if name.endswith(".txt"):
            labels = displayer.get_associated_file_buffer(name).decode().split()
    print(json.dumps({"metadata": json.loads(displayer.get_metadata_json()), "files": files, "labels": labels}))

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=args.model), max_results=1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in args.images:
            image = mp.Image.create_from_file(path)
            top = classifier.classify(image).classifications[0].categories[0]
            print(json.dumps({"file": path, "class": top.category_name, "index": top.index, "score": top.score}))


if __name__ == "__main__":
    sys.exit(main())
