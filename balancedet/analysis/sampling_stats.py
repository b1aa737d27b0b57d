"""What soft-balance sampling does to an epoch (Peng et al., CVPR 2020, sec. 4.2).

For a per-class image index (``ClassImageIndex``) and a list of lambda values
(eq. 8), :func:`sampling_stats` returns per class:

* ``expected_draws`` -- ``E_i = N * P_s*(i)`` draws of class ``i`` per epoch of
  ``N`` draws (eqs. 6-8);
* ``unseen_paper`` -- the share of class ``i``'s images not drawn *for class
  i* in an epoch, ``(1 - 1/n_i)^E_i``: the figure the paper quotes (99.13 %
  of *person* images unseen under class-aware sampling on Open Images);
* ``unseen`` -- the share of class ``i``'s images not drawn at all, also
  counting draws made for the other classes an image carries: image ``j`` is
  drawn by one draw with probability ``q_j = sum_{c in j} P_s*(c) / n_c``,
  so it is unseen with probability ``(1 - q_j)^N``, averaged over the images
  of class ``i``;
* ``oversampling`` -- ``E_i / n_i``, how many times each image of class ``i``
  is drawn for class ``i`` per epoch on average (1 would be one pass over the
  data; the paper's 252x for *pressure cooker*).

:func:`plot_sampling_stats` draws ``E_i`` and ``unseen`` against the class
frequency rank, one line per lambda.
"""
import os
import os.path as osp

import numpy as np

from balancedet.datasets.samplers.soft_balance_sampler import soft_balance_probs


def sampling_stats(index, lams, epoch_length=None):
    """Per-class epoch statistics of soft-balance sampling for each lambda.

    Args:
        index (ClassImageIndex): the per-class image index.
        lams (Sequence[float]): lambda values (>= 0).
        epoch_length (int, optional): draws per epoch; default: the number of
            images of the dataset.

    Returns:
        dict: ``counts`` (n_i), ``epoch_length`` and ``per_lambda``, a dict
        ``lam -> dict(probs, expected_draws, unseen_paper, unseen,
        oversampling)`` of float arrays over classes (NaN for classes no
        image contains).
    """
    n = index.num_images if epoch_length is None else int(epoch_length)
    if n < 1:
        raise ValueError(f'epoch_length must be >= 1, got {n}')
    if len(lams) == 0:
        raise ValueError('give at least one lambda value')
    counts = index.counts.astype(np.float64)
    valid = counts > 0
    owner = np.repeat(np.arange(index.num_classes), index.counts)
    out = {'counts': index.counts.copy(), 'epoch_length': n, 'per_lambda': {}}
    for lam in lams:
        probs = soft_balance_probs(index.counts, lam)
        draws = n * probs
        with np.errstate(divide='ignore', invalid='ignore'):
            per_img_prob = np.where(valid, probs / counts, 0.0)
            # log1p(-1) = -inf gives 0 for classes/images that cannot be missed
            unseen_paper = np.where(valid, np.exp(draws * np.log1p(-1.0 / counts)), np.nan)
            oversampling = np.where(valid, draws / counts, np.nan)
            q = np.bincount(index.images, weights=per_img_prob[owner],
                            minlength=index.num_images)
            img_unseen = np.exp(n * np.log1p(-np.minimum(q, 1.0)))
            sums = np.bincount(owner, weights=img_unseen[index.images],
                               minlength=index.num_classes)
            unseen = np.where(valid, sums / counts, np.nan)
        out['per_lambda'][float(lam)] = {
            'probs': probs, 'expected_draws': draws, 'unseen_paper': unseen_paper,
            'unseen': unseen, 'oversampling': oversampling}
    return out


def format_sampling_stats(stats, classes=None, top=None):
    """Text report: a per-class table and, per lambda, the head/tail summary."""
    counts = stats['counts']  # classes by image count, those with images only
    order = np.argsort(-counts, kind='stable')[:np.count_nonzero(counts > 0)]
    if top is not None and len(order) > 2 * top:
        order = np.r_[order[:top], order[-top:]]
    lams = list(stats['per_lambda'])
    names = [classes[c] if classes is not None else str(c) for c in range(len(counts))]
    width = max(12, *(len(names[c]) for c in order))
    head = f'{"class":<{width}} {"n_i":>9} ' + ' '.join(f'{"E_i@" + f"{lam:g}":>11}'
                                                          for lam in lams)
    title = f'expected draws per epoch E_i = N * P_s*(i) (N = {stats["epoch_length"]:,} draws)'
    lines = [title, head, *(f'{names[c]:<{width}} {counts[c]:>9,} ' + ' '.join(
        f'{stats["per_lambda"][lam]["expected_draws"][c]:>11.1f}' for lam in lams) for c in order)]
    freq, rare = order[0], np.argsort(np.where(counts > 0, counts, np.inf))[0]
    lines += ['', f'most frequent class: {names[freq]} (n = {counts[freq]:,}); '
              f'rarest class: {names[rare]} (n = {counts[rare]:,})',
              f'{"lambda":>7} {"unseen % (paper)":>17} {"unseen % (all)":>15} '
              f'{"rarest oversampling":>20}']
    for lam in lams:
        s = stats['per_lambda'][lam]
        lines.append(f'{lam:>7g} {100 * s["unseen_paper"][freq]:>16.2f}% '
                     f'{100 * s["unseen"][freq]:>14.2f}% {s["oversampling"][rare]:>19.1f}x')
    lines.append('unseen % (paper): share of the frequent class\'s images not drawn for that '
                 'class, (1 - 1/n)^E; (all): not drawn at all, counting draws of their other '
                 'labels; oversampling: E / n draws per image of the rarest class.')
    return '\n'.join(lines)


def plot_sampling_stats(stats, out_file, classes=None):
    """Save a PNG: E_i and unseen share against class frequency rank."""
    counts = stats['counts']
    order = np.argsort(-counts, kind='stable')[:np.count_nonzero(counts > 0)]
    rank = np.arange(1, len(order) + 1)
    fig, (ax1, ax2) = subplots(1, 2, figsize=(11, 4))
    ax1.plot(rank, counts[order], 'k--', label='n_i (images)')
    for lam, s in stats['per_lambda'].items():
        ax1.plot(rank, s['expected_draws'][order], label=f'E_i, lambda={lam:g}')
        ax2.plot(rank, 100 * s['unseen'][order], label=f'lambda={lam:g}')
    ax1.set(yscale='log', xlabel='class (sorted by image count)', ylabel='per epoch',
            title='expected draws per class')
    ax2.set(xlabel='class (sorted by image count)', ylabel='% of the class\'s images',
            title='images never drawn in an epoch')
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    if classes is not None and len(order) <= 30:
        for ax in (ax1, ax2):
            ax.set_xticks(rank)
            ax.set_xticklabels([classes[c] for c in order], rotation=60, fontsize=7)
    return save_figure(fig, out_file)


def per_class_ap_vs_frequency(ap, counts, classes):
    """Pair per-class AP (dict name -> AP) with class image counts.

    Returns ``(names, counts, aps)`` sorted by decreasing count; classes with
    no AP (missing, NaN or negative, as COCO reports classes without ground
    truth) are dropped.
    """
    rows = [(name, int(counts[c]), float(ap[name])) for c, name in enumerate(classes)
            if _has_ap(ap, name)]
    if not rows:
        raise ValueError(f'no per-class AP found for any of the classes {list(classes)}; run the '
                         'test with `--cfg-options test_evaluator.classwise=True`')
    rows.sort(key=lambda r: -r[1])
    names, cnts, aps = zip(*rows)
    return list(names), np.array(cnts), np.array(aps)


def _has_ap(ap, name):
    """``ap[name]`` exists and is a real AP (COCO writes NaN / -1 for no ground truth)."""
    return ap.get(name) is not None and np.isfinite(ap[name]) and ap[name] >= 0


def summarise_names(names, first=5):
    """``'N: a, b, c, d, e, ... (N - 5 more)'`` -- class lists in warnings stay one short line."""
    names = list(names)
    more = f', ... ({len(names) - first} more)' if len(names) > first else ''
    return f'{len(names)}: {", ".join(map(str, names[:first]))}{more}'


def summarise_ap(ap, counts, classes, fraction=1 / 3):
    """Mean AP over all classes and over the rarest ``fraction`` of the classes.

    Classes without training images (count 0, e.g. LVIS categories absent from
    a subset) are left out of everything -- they have no frequency to rank and
    would otherwise turn the rarest-third mean into NaN. Of the rest, the rare
    classes are the ``max(1, round(fraction * C))`` classes with the fewest
    training images (ties by label order); classes without an AP (missing /
    negative) are left out of both means.

    Returns:
        dict: ``mAP``, ``rare_mAP`` (NaN only if no rare class has an AP),
        ``rare_classes`` (names), ``rare_missing`` (rare classes without AP)
        and ``no_train_images`` (the classes left out).
    """
    counts = np.asarray(counts)
    trained = [c for c in range(len(classes)) if counts[c] > 0]
    if not trained:
        raise ValueError('no class has a training image; check the training annotation file')
    kept = [classes[c] for c in trained]
    names, _, aps = per_class_ap_vs_frequency({n: ap[n] for n in kept if n in ap},
                                              counts[trained], kept)
    k = max(1, round(fraction * len(trained)))
    rare = [kept[i] for i in np.argsort(counts[trained], kind='stable')[:k]]
    by_name = dict(zip(names, aps))
    rare_aps = [by_name[n] for n in rare if n in by_name]
    return {'mAP': float(np.mean(aps)),
            'rare_mAP': float(np.mean(rare_aps)) if rare_aps else float('nan'),
            'rare_classes': rare, 'rare_missing': [n for n in rare if n not in by_name],
            'no_train_images': [classes[c] for c in range(len(classes)) if counts[c] <= 0]}


def frequency_group_ap(ap, classes, frequencies, counts=None):
    """LVIS's APr / APc / APf: mean per-class AP over the categories whose
    ``frequency`` is ``r`` / ``c`` / ``f`` (Gupta et al., CVPR 2019, sec. 5).

    Classes without an AP (no ground truth in the evaluated split: missing,
    NaN or negative) and, when ``counts`` is given, classes without training
    images are left out. Equals the LVIS metric's APr/APc/APf when every class
    has training images (the metric averages its precision entries, which is
    the mean of the per-class APs).

    Returns:
        dict: ``APr``, ``APc``, ``APf`` (NaN for an empty group) and
        ``num_r``, ``num_c``, ``num_f``, the classes averaged.
    """
    if len(frequencies) != len(classes):
        raise ValueError(f'{len(frequencies)} frequencies for {len(classes)} classes')
    out = {}
    for group in ('r', 'c', 'f'):
        vals = [ap[n] for c, n in enumerate(classes) if frequencies[c] == group
                and _has_ap(ap, n) and (counts is None or counts[c] > 0)]
        out[f'AP{group}'] = float(np.mean(vals)) if vals else float('nan')
        out[f'num_{group}'] = len(vals)
    return out


def merge_runs(runs):
    """Union of the runs' classes, most frequent first: ``(names, counts)``."""
    count_of = {}
    for names, counts, _ in runs.values():
        count_of.update(zip(names, counts))
    names = sorted(count_of, key=lambda n: -count_of[n])
    return names, np.array([count_of[n] for n in names])


def plot_ap_vs_frequency(runs, out_file):
    """Save a PNG like Fig. 5 of Peng et al.: per-class AP, classes by frequency.

    Args:
        runs (dict): label -> ``(names, counts, aps)`` from
            :func:`per_class_ap_vs_frequency` (same classes in every run).
    """
    names, counts = merge_runs(runs)
    # one labelled tick per class up to 40 classes; beyond (LVIS) the width stays bounded
    fig, ax1 = subplots(figsize=(min(max(6, 0.45 * len(names)), 18), 4))
    x = np.arange(len(names))
    ax2 = ax1.twinx()
    ax2.bar(x, counts, color='0.85', label='training images')
    ax2.set(yscale='log', ylabel='training images (log)')
    ax1.set_zorder(ax2.get_zorder() + 1)
    ax1.patch.set_visible(False)
    for label, (run_names, _, aps) in runs.items():
        by_name = dict(zip(run_names, aps))
        ax1.plot(x, [100 * by_name.get(n, np.nan) for n in names], marker='o', label=label,
                 markersize=6 if len(names) <= 40 else 2)
    if len(names) <= 40:
        ax1.set_xticks(x)
        ax1.set_xticklabels(names, rotation=60, fontsize=8)
    ax1.set(ylabel='AP (%)', xlabel='class, most frequent first')
    ax1.legend(fontsize=8)
    return save_figure(fig, out_file)


def subplots(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt.subplots(*args, **kwargs)


def save_figure(fig, out_file):
    """Write ``fig`` to ``out_file`` (creating its folder) and close it."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    os.makedirs(osp.dirname(out_file) or '.', exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file
