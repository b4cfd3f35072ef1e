"""Write a real verl actor checkpoint from a model folder, with verl's own FSDPCheckpointManager, on CPU.

`python tests/verl_checkpoint.py MODEL_DIR OUT_ACTOR_DIR WORLD_SIZE {full,lora} STEP`: spawns WORLD_SIZE gloo ranks,
loads the model, (LoRA: wraps it with PEFT on the language model's q/v projections), moves every trainable weight by
a seeded step so "trained" differs from the start, shards it with FSDP2 over a CPU mesh (FSDP1 refuses a mesh
without an accelerator), saves with verl's checkpoint manager the layout `global_step_N/actor/` that the trainer
writes, and updates verl's tracker file. Rank 0 also saves the trained full state dict beside the checkpoints
(`trained_state.pt`) for the test to compare with what comes out of the merger.
"""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def write(rank: int, world: int, model_dir: str, actor_dir: str, lora: bool, step: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from omegaconf import OmegaConf
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    from pipeline.models.load import load_model_and_processor

    model, processor = load_model_and_processor(model_dir)
    if lora:
        from peft import LoraConfig, get_peft_model

        # init_lora_weights=False: B starts non-zero, so B·A is a visible change even before the "training" step
        config = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)")
        torch.manual_seed(0)  # every rank must build the same adapter (A is drawn at random)
        model = get_peft_model(model, config)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.01)
    actor = Path(actor_dir)
    actor.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, actor.parent.parent / "trained.pt")
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("fsdp",))
    sharded = fully_shard(model, mesh=mesh)
    contents = OmegaConf.create({"save_contents": ["model"], "load_contents": ["model"]})
    FSDPCheckpointManager(sharded, None, processing_class=processor, checkpoint_config=contents).save_checkpoint(
        str(actor), global_step=step
    )
    dist.barrier()
    if rank == 0:  # what verl's trainer writes after a save: the resume point
        (actor.parent.parent / "latest_checkpointed_iteration.txt").write_text(str(step))
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    model_dir, actor_dir, world, kind, step = sys.argv[1:6]
    port = 29000 + os.getpid() % 1000
    mp.spawn(write, args=(int(world), model_dir, actor_dir, kind == "lora", int(step), port), nprocs=int(world))
