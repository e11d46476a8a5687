"""The classic zoo models at sizes the tests can afford: the same architecture, narrower or on
smaller images (the full-size ImageNet definitions are built and run once, at batch 1)."""

#: the full-size ImageNet definitions (224x224, 1000 classes)
FULL_SIZE = ("resnet50", "vgg16", "alexnet", "googlenet")

#: the smallest input each family takes, and the narrowing the big ones get in tests
SMALL = {
    "resnet20": {"input_shape": (3, 16, 16), "width": 0.5},
    "resnet18": {"input_shape": (3, 16, 16), "width": 0.125},
    "vgg11": {"input_shape": (3, 32, 32), "width": 0.125},
    "vgg11_bn": {"input_shape": (3, 32, 32), "width": 0.125},
    "squeezenet": {"input_shape": (3, 16, 16)},
    "densenet_small": {"input_shape": (3, 8, 8), "blocks": (2, 2), "growth": 4},
    "mobilenet_v2": {"input_shape": (3, 16, 16), "width": 0.25},
    "resnet50": {"input_shape": (3, 32, 32), "width": 0.0625, "num_classes": 10},
    "vgg16": {"input_shape": (3, 32, 32), "width": 0.0625, "num_classes": 10},
    "alexnet": {"input_shape": (3, 63, 63), "width": 0.0625, "num_classes": 10},
    "googlenet": {"input_shape": (3, 32, 32), "width": 0.0625, "num_classes": 10},
}


def small(name: str) -> dict:
    """Keyword arguments that make zoo model `name` quick to test ({} for the small models)."""
    return dict(SMALL.get(name, {}))
