"""Write a tiny COCO format dataset: ``python tools/misc/make_coco_dataset.py [--out-dir DIR]``.

See ``balancedet.datasets.coco_lvis_generator`` for what it contains.
"""
from balancedet.datasets.coco_lvis_generator import main

if __name__ == '__main__':
    main('coco')
