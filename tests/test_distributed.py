"""Multi-process correctness: with 2 processes (gloo, CPU) the contrastive loss uses the
negatives of the whole global batch, so loss and gradients equal one process's on that batch."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import cli, require_data
from medmap.data.loading import SeededBatchSampler, batches_per_epoch
from medmap.losses import cauchy_log_similarity, info_nce_loss, make_loss

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def global_batch():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8, 6, generator=generator)
    views = (images + 0.1 * torch.randn(8, 6, generator=generator),
             images + 0.1 * torch.randn(8, 6, generator=generator))  # fmt: skip
    model = torch.nn.Linear(6, 2)
    torch.nn.init.normal_(model.weight, generator=generator)
    return views, model.state_dict()


def worker(rank, port, gathered, results):
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    (view_a, view_b), weights = global_batch()
    model = torch.nn.Linear(6, 2)
    model.load_state_dict(weights)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    share = len(view_a) // WORLD
    mine = slice(rank * share, (rank + 1) * share)
    outputs = ddp(torch.cat((view_a[mine], view_b[mine])))
    if gathered:
        loss = make_loss("cauchy")(*outputs.chunk(2))  # sees the process group itself
    else:  # the common mistake: negatives from this process only
        loss = info_nce_loss(*outputs.chunk(2), cauchy_log_similarity)
    loss.backward()  # DDP averages the gradients over the processes
    # plain lists: tensors in a queue would be shared memory that dies with this process
    results.put((rank, loss.item(), model.weight.grad.tolist(), model.bias.grad.tolist()))
    dist.barrier()
    dist.destroy_process_group()
    results.close()
    results.join_thread()  # the result is in the pipe; skip C++ teardown at interpreter exit,
    os._exit(0)  # where gloo's threads sometimes abort ("terminate called without ...")


def run_processes(gathered):
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(rank, free_port_value, gathered, results))
        for free_port_value in [free_port()]
        for rank in range(WORLD)
    ]
    for process in processes:
        process.start()
    collected = sorted(results.get(timeout=120) for _ in range(WORLD))
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return collected


def single_process():
    (view_a, view_b), weights = global_batch()
    model = torch.nn.Linear(6, 2)
    model.load_state_dict(weights)
    loss = make_loss("cauchy")(*model(torch.cat((view_a, view_b))).chunk(2))
    loss.backward()
    return loss.item(), model.weight.grad, model.bias.grad


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_two_process_loss_and_gradients_equal_the_single_process_ones():
    loss, weight_grad, bias_grad = single_process()
    ranks = run_processes(gathered=True)
    assert sum(r[1] for r in ranks) / WORLD == pytest.approx(loss, rel=1e-5)
    for _, _, rank_weight_grad, rank_bias_grad in ranks:
        torch.testing.assert_close(
            torch.tensor(rank_weight_grad), weight_grad, rtol=1e-4, atol=1e-6
        )
        torch.testing.assert_close(torch.tensor(rank_bias_grad), bias_grad, rtol=1e-4, atol=1e-6)
    # Local negatives only (what many SimCLR re-implementations do) gives another loss.
    local = run_processes(gathered=False)
    assert sum(r[1] for r in local) / WORLD != pytest.approx(loss, rel=1e-3)


def test_ddp_sampler_slices_add_up_to_the_single_process_batches():
    single = list(SeededBatchSampler(103, 8, seed=3))
    ranks = [SeededBatchSampler(103, 8, seed=3, num_replicas=2, rank=r) for r in range(2)]
    assert all(len(sampler) == len(single) == 13 for sampler in ranks)  # 12 x 8, then 7
    assert sorted(sum(single, [])) == list(range(103))  # every image once an epoch
    for batch, (first, second) in zip(single[:-1], zip(*ranks)):
        assert len(first) == len(second) == 4
        assert first + second == batch  # rank 0 then rank 1: the global batch, in order
    # The last 7 images split 4 + 4: padded with the epoch's first image, as DistributedSampler.
    first, second = (list(sampler)[-1] for sampler in ranks)
    assert len(first) == len(second) == 4
    assert first + second == single[-1] + single[0][:1]
    with pytest.raises(ValueError, match="divisible by the number of training processes"):
        SeededBatchSampler(100, 7, seed=0, num_replicas=2, rank=0)


def test_drop_last_keeps_full_batches_only_and_a_lone_last_image_is_dropped():
    kept = list(SeededBatchSampler(103, 8, seed=3, drop_last=True))
    assert len(kept) == 12 and {len(batch) for batch in kept} == {8}
    assert kept == list(SeededBatchSampler(103, 8, seed=3))[:12]  # the same order otherwise
    assert batches_per_epoch(103, 8, drop_last=False) == 13
    assert batches_per_epoch(97, 8, drop_last=False) == 12  # 12 x 8 and 1: no negatives
    assert batches_per_epoch(96, 8, drop_last=False) == 12


def test_lightning_ddp_run_on_two_cpu_processes_writes_one_finished_run(tmp_path):
    """The whole train.py under Lightning's DDP (2 gloo processes on the CPU): both ranks
    train, rank 0 alone evaluates and writes the run's files."""
    require_data("medmnist", "breastmnist.npz")
    result = cli("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                 "experiment=smoke", "dataset=breastmnist", f"hydra.run.dir={tmp_path}",
                 timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert np.isfinite(metrics["silhouette"]) and metrics["epochs"] == [2, 1, 2]
    # 512 images at a global batch of 64: 8 steps an epoch, shared by the two processes
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 5 * 8
    assert np.load(tmp_path / "embedding.npy").shape == (512, 2)
