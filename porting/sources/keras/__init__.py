"""Keras (keras.applications on TensorFlow): its record. The runner (runner.py) builds each model as its family's
KerasModel says (from_keras.KERAS_MODEL) and reads weights with Keras's own loaders."""
from porting.sources.keras.graph import read_own_model
from porting.sources.registry import SourceLibrary, register_source
from porting.weight_maps.conventions import KERAS as CONVENTION

KERAS = register_source(SourceLibrary(
    "keras", "Keras (keras.applications)", "porting.sources.keras.runner:KerasRunner", CONVENTION,
    resize_backend="pil",  # keras.utils.load_img
    weight_suffixes=(".weights.h5", ".h5", ".hdf5", ".keras"),
    export_suffixes=(".weights.h5", ".keras", ".h5"),
    train_step=True, states_preprocessing=True,
    head_source="graph",  # a whole-model file's own graph (graph.py): the user's head, read without a flag
    read_own_model=read_own_model,  # ... and the size the user built it at, before the worker runs
    biased_bn_variance="BatchNormalization updates moving_variance with tf.nn.moments' variance, the biased "
                       "(population) one"))
