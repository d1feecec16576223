"""anime-core plugin ``ae``: the autoencoder photo -> anime converter of Abbas et al., "Ordinary to Anime"."""
