"""Training of every stage of a SemantiCodec-style model, in pipeline order.

``mae`` (semantic ViT, masked autoencoder) -> ``kmeans`` (semantic codebooks) -> ``vae`` (mel
VAE) and ``vocoder`` (HiFi-GAN), independent of each other -> ``ldm`` (UNet + acoustic
LSTM/VQ jointly).  All stages share one run folder and one loop (:mod:`.loop`); their models
and losses live in :mod:`.stages`.  :func:`.assemble.export` turns a finished run into a
checkpoint every command accepts.
"""
