"""Feature Pyramid Network: the top-down pathway P2..P6 over the backbone's C2..C5.

Each level Pk (k = 2..5) is a 1x1 lateral conv of Ck (`fpn_c{k}p{k}`) plus the nearest-
neighbour 2x upsampling of the level above (`fpn_p{k+1}upsampled`, summed in
`fpn_p{k}add`), smoothed by a 3x3 conv (`fpn_p{k}`). P6 (`fpn_p6`) subsamples P5 by 2 and
only feeds the RPN. Layer names are upstream's, so its weights load by name.
"""
import keras


def build_fpn(C2, C3, C4, C5, pyramid_size):
    """Build the pyramid.

    Args:
        C2, C3, C4, C5: backbone features, float [B, H/s, W/s, C_k] with s = 4, 8, 16, 32.
        pyramid_size: channels of every pyramid level (Config.TOP_DOWN_PYRAMID_SIZE).
    Returns:
        [P2, P3, P4, P5, P6], float [B, H/s, W/s, pyramid_size] with s = 4, 8, 16, 32, 64.
    """
    lateral = {k: keras.layers.Conv2D(pyramid_size, (1, 1), name=f"fpn_c{k}p{k}")(c)
               for k, c in ((5, C5), (4, C4), (3, C3), (2, C2))}
    merged = {5: lateral[5]}
    for k in (4, 3, 2):
        upsampled = keras.layers.UpSampling2D(size=(2, 2), name=f"fpn_p{k + 1}upsampled")(
            merged[k + 1])
        merged[k] = keras.layers.Add(name=f"fpn_p{k}add")([upsampled, lateral[k]])
    levels = [keras.layers.Conv2D(pyramid_size, (3, 3), padding="same", name=f"fpn_p{k}")(
        merged[k]) for k in (2, 3, 4, 5)]
    p6 = keras.layers.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(levels[-1])
    return levels + [p6]
