"""The model zoo: functions returning a Graph, and the same models as YAML specs in specs/.

    from dagnet.models import lenet, get_model, spec_path
    g = lenet()                                  # Fashion-MNIST sized: (1, 28, 28), 10 classes
    g = get_model("fc_net", hidden_dims=[200, 100], dropout=0.2)
    assert Graph.from_spec(spec_path("lenet")) == lenet()
"""
from __future__ import annotations

import difflib
import inspect
from pathlib import Path

from dagnet.errors import DagnetError
from dagnet.graph import Graph
from dagnet.models.attention import mixer_tiny, vit_tiny
from dagnet.models.classic import alexnet, densenet_small, squeezenet, vgg11, vgg11_bn, vgg16
from dagnet.models.inception import googlenet
from dagnet.models.mobilenet import mobilenet_v2
from dagnet.models.resnet import resnet18, resnet20, resnet50
from dagnet.models.zoo import (
    convnet_deep,
    fc_net,
    lenet,
    lenet_bn,
    resnet_small,
    three_layer_convnet,
    two_layer_net,
)

MODELS = {
    "two_layer_net": two_layer_net,
    "fc_net": fc_net,
    "three_layer_convnet": three_layer_convnet,
    "lenet": lenet,
    "lenet_bn": lenet_bn,
    "convnet_deep": convnet_deep,
    "resnet_small": resnet_small,
    "resnet20": resnet20,
    "resnet18": resnet18,
    "vgg11": vgg11,
    "vgg11_bn": vgg11_bn,
    "squeezenet": squeezenet,
    "densenet_small": densenet_small,
    "mobilenet_v2": mobilenet_v2,
    "vit_tiny": vit_tiny,
    "mixer_tiny": mixer_tiny,
    # full-size ImageNet definitions (224x224, 1000 classes): they build and run at batch 1
    "resnet50": resnet50,
    "vgg16": vgg16,
    "alexnet": alexnet,
    "googlenet": googlenet,
}

SPEC_DIR = Path(__file__).resolve().parent / "specs"


def _known(name: str) -> None:
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DagnetError(f"unknown model '{name}'.{hint} Known models: {', '.join(MODELS)}")


def get_model(name: str, **kwargs) -> Graph:
    """The zoo model `name` built with `kwargs` (e.g. input_shape, num_classes)."""
    _known(name)
    fn = MODELS[name]
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as e:
        takes = ", ".join(inspect.signature(fn).parameters)
        raise DagnetError(f"{name}: {e}; it takes {takes}") from None
    return fn(**kwargs)


def spec_path(name: str) -> Path:
    """The YAML spec file of a zoo model (it builds the same graph as the default call)."""
    _known(name)
    return SPEC_DIR / f"{name}.yaml"


__all__ = ["MODELS", "SPEC_DIR", "get_model", "spec_path", *MODELS]
