import pytest
import torch

from aiecg.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("n_meta", [0, 16])
def test_every_registered_model_runs_forward_and_backward(name, n_meta):
    torch.manual_seed(0)
    model = create_model(name, n_leads=8, n_samples=400, n_meta=n_meta, n_outputs=2)
    ecg, meta = torch.randn(4, 8, 400), torch.randn(4, n_meta)
    out = model(ecg, meta)
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    groups = model.parameter_groups()
    assert groups[0] == list(model.head.parameters())
    assert sum(len(g) for g in groups) == len(list(model.parameters()))  # every parameter in exactly one group
    model.reset_head(4)
    assert model(ecg, meta).shape == (4, 4)


def test_fcn_matches_wang_2017_architecture():
    model = create_model("fcn", n_leads=8, n_samples=400, n_meta=16, n_outputs=1)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(128, 8), (256, 5), (128, 3)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 3
    assert model.head.hidden.in_features == 128 + 16
    assert model.head.dropout.p == 0.6 and model.dropout.p == 0.4
    with pytest.raises(ValueError, match="expects 16 clinical features"):
        model(torch.randn(2, 8, 400), torch.randn(2, 3))


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="registered models: .*fcn"):
        create_model("transformer", 8, 400, 0, 1)
