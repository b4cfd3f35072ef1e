"""The reward module through the engines' own machinery: verl's Hydra config + custom-reward loader + reward
manager (decode, thread pool), and TRL's GRPOTrainer."""

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

VERL_REWARD = Path(__file__).resolve().parent.parent / "rl" / "rewards" / "verl_reward.py"


def verl_config(overrides):
    from hydra import compose, initialize_config_dir
    from verl.trainer import config as verl_config_pkg

    config_dir = str(Path(verl_config_pkg.__file__).parent)
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


@pytest.fixture(scope="module")
def verl_reward_fn():
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = verl_config(
        [f"reward.custom_reward_function.path={VERL_REWARD}", "reward.custom_reward_function.name=compute_score"]
    )
    fn = get_custom_reward_fn(cfg)
    assert fn is not None
    return fn


def test_verl_loader_finds_compute_score(verl_reward_fn):
    out = verl_reward_fn(
        data_source="geo3k",
        solution_str="<think>x</think><answer>\\sqrt{18}</answer>",
        ground_truth="3\\sqrt{2}",
        extra_info={"answer_type": "expression"},
    )
    assert out == {"score": 1.0, "format": 1.0, "accuracy": 1.0}
    out = verl_reward_fn(
        data_source="demo",
        solution_str="<answer>B</answer>",
        ground_truth="B",
        extra_info={"answer_type": "choice", "choices": '["x", "y"]'},
    )
    assert out == {"score": 0.0, "format": 0.0, "accuracy": 1.0}  # separate metrics: format failed, answer right


def test_verl_reward_kwargs_select_a_preset():
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = verl_config(
        [
            f"reward.custom_reward_function.path={VERL_REWARD}",
            "reward.custom_reward_function.name=compute_score",
            "+reward.custom_reward_function.reward_kwargs.reward=vlm_r1_rec",
        ]
    )
    fn = get_custom_reward_fn(cfg)
    out = fn(
        data_source="refcoco",
        solution_str="<think>x</think><answer>[0, 0, 10, 10]</answer>",
        ground_truth="[0, 0, 10, 20]",
        extra_info={"answer_type": "bbox", "image_sizes": "[[100, 100]]"},
    )
    assert out["score"] == pytest.approx(0.5 + 0.5 * 0.5) and out["accuracy"] == pytest.approx(0.5)


def test_verl_naive_reward_manager_end_to_end(verl_reward_fn, tiny_models):
    """Token ids -> verl's decode (skip_special_tokens) -> our compute_score in verl's executor thread."""
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    from pipeline.models.load import load_processor

    tok = load_processor(tiny_models["qwen2_5_vl"]).tokenizer
    cfg = verl_config([])
    manager = NaiveRewardManager(cfg, tok, verl_reward_fn)
    results = []
    for text, gold, want in [
        ("<think>4 bars</think><answer>12</answer>", "12", 1.0),
        ("<think>4 bars</think><answer>13</answer>", "12", 0.0),
    ]:
        prompt = tok("How many?", return_tensors="pt")["input_ids"][0]
        response = tok(text + "<|im_end|>", return_tensors="pt")["input_ids"][0]
        ids = torch.cat([prompt, response])[None]
        data = DataProto.from_dict(
            tensors={
                "prompts": prompt[None],
                "responses": response[None],
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
            },
            non_tensors={
                "data_source": np.array(["demo"], dtype=object),
                "reward_model": np.array([{"style": "rule", "ground_truth": gold}], dtype=object),
                "extra_info": np.array([{"answer_type": "number"}], dtype=object),
            },
        )
        out = (
            manager.loop.run_until_complete(manager.run_single(data))
            if not manager.loop.is_running()
            else asyncio.run(manager.run_single(data))
        )
        results.append(out)
        assert out["reward_score"] == want and set(out["reward_extra_info"]) >= {"score", "format", "accuracy"}
    assert results[1]["reward_extra_info"]["format"] == 1.0


def test_trl_reward_functions_on_conversational_completions():
    from rl.rewards.trl_rewards import accuracy_reward, format_reward, hfrrf_reward, make_trl_reward

    completions = [
        [{"role": "assistant", "content": "<think>a</think><answer>B</answer>"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "<answer>B</answer>"}]}],
        "<think>a</think><answer>A or B</answer>",
    ]
    cols = {"answer": ["B", "B", "B"], "answer_type": ["choice"] * 3, "choices": [["x", "y"]] * 3, "image": [None] * 3}
    assert format_reward(prompts=None, completions=completions, **cols) == [1.0, 0.0, 1.0]
    assert accuracy_reward(prompts=None, completions=completions, **cols) == [1.0, 1.0, 0.0]
    assert hfrrf_reward(prompts=None, completions=completions, **cols) == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="unknown reward"):
        make_trl_reward({"acuracy": 1.0})


@pytest.mark.slow
def test_trl_grpo_step_with_vr1_rewards(tiny_models, tmp_path):
    import datasets
    from PIL import Image
    from trl import GRPOConfig, GRPOTrainer

    from pipeline.models.load import load_model_and_processor
    from rl.rewards.trl_rewards import accuracy_reward, format_reward, hfrrf_reward

    model, processor = load_model_and_processor(tiny_models["qwen2_5_vl"])
    calls = []

    def recorded(fn):
        def wrapper(prompts=None, completions=None, **cols):
            values = fn(prompts=prompts, completions=completions, **cols)
            calls.append((fn.__name__, len(completions), values, cols["answer_type"]))
            return values

        wrapper.__name__ = fn.__name__
        return wrapper

    img = Image.new("RGB", (56, 56), "red")
    rows = [
        {
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Count {i}"}]}],
            "image": img,
            "answer": str(i),
            "answer_type": "number",
        }
        for i in range(4)
    ]
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        use_cpu=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-2,
        bf16=False,
    )
    trainer = GRPOTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=processor,
        reward_funcs=[recorded(format_reward), recorded(accuracy_reward), recorded(hfrrf_reward)],
    )
    trainer.train()
    assert {c[0] for c in calls} == {"format", "accuracy", "hfrrf"}
    assert all(
        n == 2 and len(v) == 2 and all(x in (0.0, 1.0) for x in v) and t == ["number"] * 2 for _, n, v, t in calls
    )
    logged = trainer.state.log_history[0]
    assert {"rewards/format/mean", "rewards/accuracy/mean", "rewards/hfrrf/mean"} <= set(logged)
