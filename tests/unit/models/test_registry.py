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


def test_models_are_registered_for_the_inputs_they_read():
    from aiecg.models.registry import check_model_input

    assert list_models("median") == ["fcn", "fcn_zhou2024", "resnet18", "resnet34"]
    assert list_models("rhythm") == ["inception1d", "resnet18", "resnet34"] and list_models("both") == ["dual"]
    with pytest.raises(ValueError, match="'fcn' reads median input, not 'rhythm'; .*pick --arch inception1d or"):
        check_model_input("fcn", "rhythm")


def test_inception_time_keeps_the_strip_length_and_follows_ismail_fawaz_2020():
    model = create_model("inception1d", n_leads=12, n_samples=2500, n_meta=0, n_outputs=1)
    kernels = sorted({c.kernel_size[0] for c in model.modules() if isinstance(c, torch.nn.Conv1d)})
    assert kernels == [1, 9, 19, 39] and len(model.blocks) == 2 and model.n_features == 128
    x = torch.randn(2, 12, 2500)
    assert model.blocks[0](x).shape == (2, 128, 2500)  # no downsampling before the pooling
    with pytest.raises(ValueError, match="depth"):
        create_model("inception1d", 12, 2500, 0, 1, depth=4)


def test_the_dual_model_reads_the_median_beat_and_the_strip_each_with_its_own_encoder():
    from aiecg.models.registry import model_kwargs

    torch.manual_seed(0)
    model = create_model("dual", n_leads=8, n_samples=400 + 500, n_meta=3, n_outputs=1, median_samples=400,
                         rhythm_kwargs={"filters": 4, "depth": 3}).eval()
    x, meta = torch.randn(2, 8, 900), torch.randn(2, 3)
    out = model(x, meta)
    changed = x.clone()
    changed[:, :, 400:] = 0  # the strip part matters, and the median part does
    assert not torch.allclose(model(changed, meta), out)
    changed = x.clone()
    changed[:, :, :400] = 0
    assert not torch.allclose(model(changed, meta), out)
    again = create_model("dual", 8, 900, 3, 1, **model_kwargs(model)).eval()
    again.load_state_dict(model.state_dict())
    assert torch.equal(again(x, meta), out)
    assert not any(name.startswith("blocks.0.head") for name in model.state_dict())
    with pytest.raises(ValueError, match="median_samples"):
        create_model("dual", 8, 400, 0, 1, median_samples=400)
