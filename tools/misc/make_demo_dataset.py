"""Generate the demo dataset: ``python tools/misc/make_demo_dataset.py [--out-dir data/demo]``."""
from balancedet.datasets.demo_generator import main

if __name__ == '__main__':
    main()
