"""Code that serves one lesson, imported by name: ``from gan_utils.lessons import toy``.
    toy     lessons 01 and 02: the toy players, a run with snapshots, the toy metrics
    dirac   lesson 04: the two-parameter Dirac-GAN
    seeds   lesson 04: many seeds of the toy GAN trained as one batched model, and the tricks
    dcgan   lesson 05: the DCGAN runs and a convolution as a matrix
"""
