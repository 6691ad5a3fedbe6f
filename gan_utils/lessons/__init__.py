"""Code that serves one lesson, imported by name (``from gan_utils.lessons import toy``): toy (lessons 01 and 02),
dirac and seeds (lesson 04: the Dirac-GAN; many toy seeds as one batched model, and the tricks), dcgan (lesson 05)."""
