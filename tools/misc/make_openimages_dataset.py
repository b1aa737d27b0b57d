"""Write a tiny dataset in the real Open Images formats (V6 and Challenge 2019).

    python tools/misc/make_openimages_dataset.py --out-dir data/openimages_tiny
"""
from balancedet.datasets.openimages_generator import main

if __name__ == '__main__':
    main()
