"""Write a tiny LVIS format dataset: ``python tools/misc/make_lvis_dataset.py [--out-dir DIR]``.

See ``balancedet.datasets.coco_lvis_generator`` for what it contains.
"""
from balancedet.datasets.coco_lvis_generator import main

if __name__ == '__main__':
    main('lvis')
