import numpy as np

from aiecg.data.splits import Splits, split_participants


def test_splits_are_disjoint_complete_seeded_and_stratified(tmp_path):
    ids = np.array([str(1000000 + i) for i in range(1000)], dtype=object)
    labels = (np.arange(1000) % 10 == 0).astype(int)  # 10% positives
    a = split_participants(ids, seed=3, stratify=labels)
    b = split_participants(ids[::-1].copy(), seed=3, stratify=labels[::-1].copy())
    sets = [set(a.train), set(a.val), set(a.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == set(ids)
    assert (len(a.train), len(a.val), len(a.test)) == (700, 150, 150)
    for part in (a.train, a.val, a.test):  # the 10% positives in each split
        positives = labels[np.isin(ids, part)].sum()
        assert abs(positives / len(part) - 0.1) < 0.01
    np.testing.assert_array_equal(a.test, b.test)  # row order does not matter, the seed does
    assert set(split_participants(ids, seed=4).test) != set(a.test)
    a.save(tmp_path)
    np.testing.assert_array_equal(Splits.load(tmp_path).val, a.val)
    assert (tmp_path / "test_ids.txt").read_text().split() == list(a.test)


def test_grouped_split_keeps_each_group_in_one_split():
    from aiecg.data.splits import split_groups

    ids = np.array([str(i) for i in range(300)], dtype=object)
    groups = np.array([str(i // 3) for i in range(300)])  # 100 patients with 3 ECGs each
    labels = (np.arange(300) // 3 % 5 == 0).astype(int)
    splits = split_groups(ids, groups, seed=1, stratify=labels)
    where = {}
    for name in ("train", "val", "test"):
        for i in getattr(splits, name):
            where.setdefault(groups[int(i)], set()).add(name)
    assert all(len(v) == 1 for v in where.values()) and len(where) == 100
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == 300 and all(size % 3 == 0 for size in sizes) and abs(sizes[0] - 210) <= 6
