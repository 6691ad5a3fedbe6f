"""gan_utils: the small package behind the GAN course notebooks.

One module per concept: data, models, losses, train (and its callbacks), fast (CUDA graphs),
checkpoints, runs (long runs keyed to their settings), metrics, classifier, viz, toy (the toy lessons' players and metrics), dirac (the
two-parameter Dirac-GAN), ensemble (many seeds as one batched model), utils.
Every public name is importable from the package: ``from gan_utils import train_gan``;
`__all__` lists them.
"""
from . import runs, toy, viz
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .classifier import MNISTClassifier, accuracy, held_out, load_classifier, train_classifier
from .data import (TensorBatches, ToyBatches, check_pixels, data_root, gaussian_pdf, grid_centers,
                   install_debian_fashion_mnist, load_images, make_noise, mnist_split, read_idx, ring_centers,
                   sample_gaussian_1d, sample_grid, sample_line_2d, sample_mixture_2d, sample_noise,
                   sample_ring, user_cache_dir)
from .dirac import CONFIGS as DIRAC_CONFIGS, dirac_distances, dirac_gradients, dirac_trajectory, plot_dirac
from .ensemble import (TOY_TRICKS, BatchedMLP, mixture_sampler, mixture_scores, toy_models, train_seeds,
                       train_toy_seeds, wgan_k)
from .fast import fast_steps
from .losses import (GANLoss, clip_weights, discriminator_loss, feature_matching_loss, generator_loss_nonsaturating,
                     generator_loss_saturating, get_losses, gradient_penalty, hinge_loss, input_gradient_norms,
                     matching_aware_loss, outputs_loss, r1_loss, r1_penalty, wgan_critic_loss, wgan_generator_loss, wgan_gp_loss)
from .metrics import (PARZEN_SIGMAS, checkerboard_score, class_histogram, classifier_features, classifier_frechet,
                      evaluate_generator, evaluation_summary, fraction_near_line, frechet_distance, generator_scores, histogram_metrics, kl_to_uniform, ks_to_gaussian,
                      line_coverage, line_distances, mean_line_distance, mode_metrics, nearest_neighbours, parzen_log_likelihoods,
                      parzen_score, segment_distances, w1_to_gaussian, wasserstein_1d)
from .runs import Watcher, checkpoint_dir, hardware, mlp_gan, settings_key, train_run
from .models import (DCGANDiscriminator, DCGANGenerator, Maxout, MaxoutDiscriminator, MinibatchDiscrimination,
                     MLPDiscriminator, MLPGenerator, VirtualBatchNorm, conv_matrix, dcgan_init, overlap_counts,
                     spectral_normalize)
from .train import TrainingDiverged, d_step, g_step, generate, make_optimizer, new_history, step_functions, train_gan
from .utils import by_profile, get_device, get_profile, seed_everything, setup_notebook
from .viz import (SnapshotCollector, animate, plot_1d, plot_2d, plot_d_outputs, plot_generator_losses,
                  plot_losses, plot_metrics, save_gif, show_images, use_course_style)

__version__ = "0.2.0"
__all__ = ["accuracy", "animate", "BatchedMLP", "by_profile", "check_pixels", "checkerboard_score",
           "checkpoint_dir", "CheckpointError", "class_histogram", "classifier_features",
           "classifier_frechet", "clip_weights", "conv_matrix", "d_step", "data_root", "dcgan_init",
           "DCGANDiscriminator", "DCGANGenerator", "DIRAC_CONFIGS", "dirac_distances", "dirac_gradients",
           "dirac_trajectory", "discriminator_loss", "evaluate_generator", "evaluation_summary", "fast_steps", "feature_matching_loss",
           "fraction_near_line", "frechet_distance", "g_step", "GANLoss", "gaussian_pdf", "generate",
           "generator_loss_nonsaturating", "generator_loss_saturating", "generator_scores", "get_device",
           "get_losses", "get_profile", "gradient_penalty", "grid_centers", "hardware", "held_out",
           "hinge_loss", "histogram_metrics", "input_gradient_norms", "install_debian_fashion_mnist",
           "kl_to_uniform", "ks_to_gaussian", "line_coverage", "line_distances", "load_checkpoint",
           "load_classifier", "load_images", "make_noise", "make_optimizer", "Maxout", "MaxoutDiscriminator",
           "matching_aware_loss", "mean_line_distance", "MinibatchDiscrimination", "mixture_sampler", "mixture_scores", "mlp_gan", "MLPDiscriminator",
           "MLPGenerator", "mnist_split", "MNISTClassifier", "mode_metrics", "nearest_neighbours", "new_history", "outputs_loss",
           "overlap_counts", "parzen_log_likelihoods", "parzen_score", "PARZEN_SIGMAS", "plot_1d", "plot_2d",
           "plot_d_outputs", "plot_dirac", "plot_generator_losses", "plot_losses", "plot_metrics", "r1_loss",
           "r1_penalty", "read_idx", "ring_centers", "runs", "sample_gaussian_1d", "sample_grid",
           "sample_line_2d", "sample_mixture_2d", "sample_noise", "sample_ring", "save_checkpoint",
           "save_gif", "seed_everything", "segment_distances", "settings_key", "setup_notebook",
           "show_images", "SnapshotCollector", "spectral_normalize", "step_functions", "TensorBatches",
           "toy", "toy_models", "TOY_TRICKS", "ToyBatches", "train_classifier", "train_gan", "train_run", "train_seeds",
           "train_toy_seeds", "TrainingDiverged", "use_course_style", "user_cache_dir", "VirtualBatchNorm",
           "viz", "w1_to_gaussian", "wasserstein_1d", "Watcher", "wgan_critic_loss", "wgan_generator_loss",
           "wgan_gp_loss", "wgan_k", "__version__"]
