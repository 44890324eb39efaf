"""A deterministic, transformer-shaped sample model to try the command line on.

Llama-style names and shapes, small: a 1024 x 256 token embedding, two decoder layers
(q/k/v/o projections 256 x 256, gate/up 512 x 256, down 256 x 512, two RMSNorm weights
each), a final norm and int64 position ids: 1.6 M parameters, about 6 MB of float32.
Weights are N(0, 0.02) with a few outlier input columns per projection (as trained
LLM weights have, and what makes per-channel and grouped scales differ); norms are near
1.  The same bytes on every machine: NumPy's PCG64 generator with a fixed seed.
"""
import numpy as np

HIDDEN = 256
INTERMEDIATE = 512
VOCAB = 1024
LAYERS = 2
POSITIONS = 128
SEED = 2024


def sample_model(hidden=HIDDEN, intermediate=INTERMEDIATE, vocab=VOCAB, layers=LAYERS,
                 seed=SEED):
    """name -> array of a small Llama-shaped checkpoint (float32 weights, int64 ids).

    Weights are ``(out_features, in_features)``, as PyTorch's ``nn.Linear`` stores them.
    """
    rng = np.random.default_rng(seed)

    def linear(out_features, in_features):
        w = rng.normal(0.0, 0.02, (out_features, in_features)).astype(np.float32)
        outliers = rng.choice(in_features, size=max(1, in_features // 64), replace=False)
        w[:, outliers] *= np.float32(4.0)
        return w

    def norm():
        return (1.0 + rng.normal(0.0, 0.05, hidden)).astype(np.float32)

    model = {"model.embed_tokens.weight": linear(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            model[f"{p}self_attn.{name}.weight"] = linear(hidden, hidden)
        model[f"{p}mlp.gate_proj.weight"] = linear(intermediate, hidden)
        model[f"{p}mlp.up_proj.weight"] = linear(intermediate, hidden)
        model[f"{p}mlp.down_proj.weight"] = linear(hidden, intermediate)
        model[f"{p}input_layernorm.weight"] = norm()
        model[f"{p}post_attention_layernorm.weight"] = norm()
    model["model.norm.weight"] = norm()
    model["model.position_ids"] = np.arange(POSITIONS, dtype=np.int64)[None]
    return model
