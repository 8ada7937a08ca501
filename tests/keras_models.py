"""Keras models made in the tests from the shared float MobileNet weights, as users make theirs.

The float SavedModel keeps its weights in order (`kernels`, `biases`), with
batch norm folded in; rebuilt layer by layer in Keras they give the same
features, so a .keras file can hold a whole real network, self-contained.
"""
import pathlib
from typing import Dict, List

import numpy as np
from PIL import Image

from tests import datagen

# MobileNet V1: stride of each depthwise layer; pointwise layers have stride 1.
DEPTHWISE_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
FINE_TUNED_CLASSES = ('bird', 'cat', 'hot_dog')


def _weights():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  saved = tf.saved_model.load(str(datagen.SAVED_MODEL_FLOAT))
  return [k.numpy() for k in saved.kernels], [b.numpy() for b in saved.biases]


def backbone(kernels: List[np.ndarray], biases: List[np.ndarray]):
  """Images in [0, 1], any size -> 512-d features (layer 'features')."""
  import keras  # pylint: disable=import-outside-toplevel
  from keras import layers  # pylint: disable=import-outside-toplevel
  images = keras.Input((None, None, 3), name='images')
  x = layers.Rescaling(2.0, offset=-1.0)(images)  # the network itself works in [-1, 1]
  convs = [layers.Conv2D(16, 3, strides=2, padding='same', activation='relu6')]
  for i, stride in enumerate(DEPTHWISE_STRIDES):
    convs.append(layers.DepthwiseConv2D(3, strides=stride, padding='same', activation='relu6'))
    convs.append(layers.Conv2D(kernels[2 * i + 2].shape[-1], 1, activation='relu6'))
  for layer in convs:
    x = layer(x)
  for layer, kernel, bias in zip(convs, kernels, biases):
    layer.set_weights([kernel, bias])
  return images, layers.GlobalAveragePooling2D(name='features')(x)


def make(directory: pathlib.Path) -> Dict[str, pathlib.Path]:
  """Writes 'imagenet' (1000 classes, Keras Applications style) and 'fine_tuned' (3 classes) .keras files."""
  import keras  # pylint: disable=import-outside-toplevel
  from keras import layers  # pylint: disable=import-outside-toplevel
  directory.mkdir(parents=True, exist_ok=True)
  kernels, biases = _weights()
  images, features = backbone(kernels, biases)
  # The 1001-class logits without class 0 ('background'): ImageNet's 1000 classes, softmaxed.
  imagenet_head = layers.Dense(1000, activation='softmax', name='predictions')
  imagenet = keras.Model(images, imagenet_head(features), name='mobilenet_imagenet_1000')
  imagenet_head.set_weights([kernels[-1][0, 0, :, 1:], biases[-1][1:]])
  # Fine-tuning: a new 3-class head trained on the features of random crops of three photos.
  rng = np.random.default_rng(0)
  photos = {name: Image.open(datagen.PHOTOS / file).convert('RGB')
            for name, file in zip(FINE_TUNED_CLASSES, ('bird.bmp', 'cat.bmp', 'hot_dog.jpg'))}
  crops, labels = [], []
  for label, name in enumerate(FINE_TUNED_CLASSES):
    for _ in range(12):
      crops.append(np.asarray(datagen.variant(photos[name], rng, (160, 160)).resize((160, 160))))
      labels.append(label)
  pooled = keras.Model(images, features).predict(np.stack(crops).astype(np.float32) / 255.0, verbose=0)
  head = layers.Dense(len(FINE_TUNED_CLASSES), activation='softmax', name='classes')
  trainer = keras.Sequential([keras.Input((pooled.shape[1],)), head])
  trainer.compile(optimizer=keras.optimizers.Adam(0.01), loss='sparse_categorical_crossentropy')
  trainer.fit(pooled, np.array(labels), epochs=60, verbose=0)
  fine_tuned = keras.Model(images, head(features), name='mobilenet_fine_tuned')
  paths = {'imagenet': directory / 'mobilenet_imagenet_1000.keras', 'fine_tuned': directory / 'fine_tuned.keras'}
  imagenet.save(paths['imagenet'])
  fine_tuned.save(paths['fine_tuned'])
  return paths
