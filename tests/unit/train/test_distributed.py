"""The process-world helpers in one process (the multi-process paths run under torchrun in
tests/integration/test_distributed.py)."""

import torch

from aiecg.train import distributed
from aiecg.train.distributed import World


def test_world_from_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = distributed.current_world()
    assert world == World(3, 4, 1) and world.active and not world.is_main
    assert not distributed.is_main_process()
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    assert distributed.current_world() == World() and distributed.is_main_process()


def test_strided_shards_partition_a_batch():
    batch = torch.tensor([9, 4, 7, 1, 0, 3, 8])
    shards = [distributed.shard(batch, World(r, 3)) for r in range(3)]
    assert [s.tolist() for s in shards] == [[9, 1, 8], [4, 0], [7, 3]]
    assert distributed.shard(batch, World()) is batch


def test_single_process_helpers_are_no_ops():
    world, device = distributed.setup(torch.device("cpu"))
    assert world == World() and device == torch.device("cpu")
    model = torch.nn.BatchNorm1d(2)
    assert distributed.wrap(model, world, device) is model
    assert distributed.reduce_sums([1.5, 2.0], world, device) == [1.5, 2.0]
    before = model.running_mean.clone()
    distributed.sync_buffers(model, world)
    assert torch.equal(model.running_mean, before)
