"""TensorBoard event files written without TensorFlow or protobuf: a SummaryWriter (scalars,
histograms, hparams-plugin data) and the Solver callback that logs every run. View them with
`tensorboard --logdir runs` (pip install 'dagnet[tensorboard]')."""
from dagnet.tensorboard.callback import TensorBoardLogger
from dagnet.tensorboard.writer import SummaryWriter

__all__ = ["SummaryWriter", "TensorBoardLogger"]
