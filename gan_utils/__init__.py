"""gan_utils: the small package behind the GAN course notebooks.

One module per concept: data, models, losses, train, checkpoints, metrics, viz, utils,
dirac (the two-parameter Dirac-GAN), ensemble (many seeds as one batched model).
Every public name is importable from the package: ``from gan_utils import train_gan``.
"""
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import (TensorBatches, ToyBatches, data_root, gaussian_pdf, grid_centers,
                   install_debian_fashion_mnist, load_images, make_noise, read_idx, ring_centers,
                   sample_gaussian_1d, sample_grid, sample_line_2d, sample_mixture_2d, sample_noise,
                   sample_ring)
from .dirac import CONFIGS as DIRAC_CONFIGS, dirac_distances, dirac_gradients, dirac_trajectory, plot_dirac
from .ensemble import BatchedMLP, mixture_sampler, toy_models, train_seeds, train_toy_seeds
from .losses import (GANLoss, clip_weights, discriminator_loss, feature_matching_loss, generator_loss_nonsaturating,
                     generator_loss_saturating, get_losses, gradient_penalty, hinge_loss, input_gradient_norms,
                     outputs_loss, r1_loss, r1_penalty, wgan_critic_loss, wgan_generator_loss, wgan_gp_loss)
from .metrics import (fraction_near_line, kl_to_uniform, ks_to_gaussian, line_coverage, line_distances,
                      mean_line_distance, mode_metrics, w1_to_gaussian, wasserstein_1d)
from .models import (DCGANDiscriminator, DCGANGenerator, Maxout, MaxoutDiscriminator, MinibatchDiscrimination,
                     MLPDiscriminator, MLPGenerator, VirtualBatchNorm, dcgan_init, spectral_normalize)
from .train import TrainingDiverged, generate, make_optimizer, new_history, train_gan, d_step, g_step
from .utils import by_profile, get_device, get_profile, seed_everything, setup_notebook
from .metrics import (PARZEN_SIGMAS, class_histogram, classifier_features, classifier_frechet,
                      frechet_distance, histogram_metrics, mnist_split, parzen_log_likelihoods,
                      parzen_score)
from .classifier import MNISTClassifier, load_classifier, train_classifier
from .viz import (SnapshotCollector, animate, plot_1d, plot_2d, plot_d_outputs, plot_generator_losses,
                  plot_losses, plot_metrics, save_gif, show_images, use_course_style)

__version__ = "0.2.0"
