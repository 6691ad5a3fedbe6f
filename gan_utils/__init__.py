"""gan_utils: the package behind the GAN course notebooks. Core (what a student reads, ``gu.name``): steps, train,
losses, models, data, metrics, viz, callbacks, utils. Plumbing: mnist, classifier, checkpoints, runs, fast, notebook.
Code of one lesson only: ``from gan_utils.lessons import toy`` (toy, dirac, seeds, dcgan)."""
from . import checkpoints, classifier, fast, mnist, notebook, runs, viz
from .callbacks import (Progress, SnapshotCollector, TrainingDiverged, TrainingInterrupted, Watcher, new_history)
from .classifier import load_classifier
from .data import (TensorBatches, ToyBatches, gaussian_pdf, grid_centers, make_noise, ring_centers,
                   sample_gaussian_1d, sample_line_2d, sample_mixture_2d)
from .losses import (GANLoss, discriminator_loss, feature_matching_loss, generator_loss_nonsaturating,
                     generator_loss_saturating, get_loss, gradient_penalty, matching_aware_loss,
                     r1_loss, r1_penalty, wgan_gp_loss, wgan_loss)
from .metrics import (checkerboard_score, classifier_features, evaluate_generator, evaluation_summary, frechet_distance,
                      generator_scores, histogram_metrics, kl_to_uniform, mode_metrics, nearest_neighbours,
                      parzen_score, w1_to_gaussian)
from .mnist import mnist_split
from .models import (DCGANDiscriminator, DCGANGenerator, MaxoutDiscriminator, MLPDiscriminator,
                     MLPGenerator, spectral_normalize)
from .notebook import by_profile, get_profile, hardware, run_summary, setup_notebook
from .runs import mlp_gan, train_run
from .steps import d_step, g_step, generate, make_optimizer
from .train import train_gan
from .utils import get_device, seed_everything
from .viz import animate, plot_1d, plot_2d, plot_d_outputs, plot_generator_losses, plot_losses, plot_metrics, show_images

__version__ = "0.3.0"
__all__ = [
    # core: Algorithm 1 and its loop
    "d_step", "g_step", "generate", "make_optimizer", "train_gan", "new_history", "Progress", "SnapshotCollector",
    "Watcher", "TrainingDiverged", "TrainingInterrupted",
    # losses
    "GANLoss", "get_loss", "discriminator_loss", "generator_loss_saturating", "generator_loss_nonsaturating",
    "feature_matching_loss", "wgan_loss", "gradient_penalty", "wgan_gp_loss", "r1_penalty", "r1_loss",
    "matching_aware_loss",
    # models
    "MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator", "MaxoutDiscriminator",
    "spectral_normalize",
    # data
    "sample_gaussian_1d", "gaussian_pdf", "sample_line_2d", "sample_mixture_2d", "ring_centers", "grid_centers",
    "make_noise", "TensorBatches", "ToyBatches",
    # metrics
    "w1_to_gaussian", "mode_metrics", "kl_to_uniform", "histogram_metrics", "classifier_features",
    "frechet_distance", "generator_scores", "parzen_score", "nearest_neighbours", "evaluate_generator",
    "evaluation_summary", "checkerboard_score",
    # plots
    "plot_losses", "plot_d_outputs", "plot_generator_losses", "plot_metrics", "plot_1d", "plot_2d", "show_images",
    "animate",
    # utils and plumbing a lesson calls
    "seed_everything", "get_device", "setup_notebook", "by_profile", "get_profile", "hardware", "run_summary",
    "mnist_split", "load_classifier", "mlp_gan", "train_run", "__version__",
]
