"""One vocabulary analyzer for every categorical feature: `joint_vocabularies`.

It writes, per feature, the file `tft.vocabulary(x, vocab_filename=key)` writes (TFT 1.16: tokens by
count descending, ties by token bytes descending; empty tokens and tokens with a newline left out; a
dummy token when nothing is left) and registers it under `key`, so `tft.apply_vocabulary` and
`TFTransformOutput.vocabulary_file_by_name` / `vocabulary_size_by_name` work as with `tft.vocabulary`.
One `tft.vocabulary` per feature costs ~12 Beam stages each; this analyzer counts the (feature, token)
pairs of all features in one `CombinePerKey` and writes the files in one step.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform import analyzers
from tensorflow_transform.beam.analyzer_impls import maybe_add_empty_vocabulary_dummy

SEPARATOR = b"\x00"  # between the feature index and the token in the analyzer's keys
TEMPORARY_VOCABULARY = b"TEMPORARY_ASSET_VALUE"  # the file's content while TFT traces, as for tft.vocabulary


def joint_vocabularies(columns: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """{vocabulary key: deferred vocabulary file} of the [B] string `columns`, keyed like `vocab_filename`."""
    keys = list(columns)
    filenames = [analyzers.sanitized_vocab_filename(key) for key in keys]
    paths = tft.experimental.ptransform_analyzer(
        _batch_key_counts(list(columns.values())), CountAndWriteVocabularies(filenames),
        output_dtypes=[tf.string] * len(keys), output_shapes=[[]] * len(keys),
        output_asset_default_values=[TEMPORARY_VOCABULARY] * len(keys), name="joint_vocabulary")
    for key, filename in zip(keys, filenames):
        tft.annotate_asset(key, filename)
    return dict(zip(keys, paths))


def _batch_key_counts(columns: Sequence[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """The batch's distinct `<feature index>␀<token>` keys and their counts, vocabulary tokens only."""
    tokens = tf.stack(columns, axis=1)
    index = tf.broadcast_to(tf.strings.as_string(tf.range(len(columns))), tf.shape(tokens))
    keys = tf.strings.join([tf.reshape(index, [-1]), tf.reshape(tokens, [-1])], separator=SEPARATOR.decode())
    excluded = tf.strings.regex_full_match(tf.reshape(tokens, [-1]),
                                           analyzers.get_vocab_newline_characters_regex(tf.string, "text"))
    unique, _, counts = tf.unique_with_counts(tf.boolean_mask(keys, tf.logical_not(excluded)), out_idx=tf.int64)
    return unique, counts


class CountAndWriteVocabularies(tft_beam.experimental.PTransformAnalyzer):
    """Counts (feature, token) pairs over the dataset and writes one vocabulary file per feature."""

    def __init__(self, filenames: Sequence[str]):
        super().__init__()
        self.filenames = list(filenames)

    def expand(self, batches):
        tags = [str(i) for i in range(len(self.filenames))]
        paths = (batches
                 | "PairCounts" >> beam.FlatMap(_pair_counts)
                 | "CountPerPair" >> beam.CombinePerKey(sum)
                 | "AllCounts" >> beam.combiners.ToList()
                 | "WriteVocabularies" >> beam.FlatMap(
                     _write_vocabularies, self.base_temp_dir, self.filenames).with_outputs(*tags))
        return tuple(paths[tag] for tag in tags)


def _pair_counts(batch: Sequence[np.ndarray]) -> Iterable[Tuple[Tuple[int, bytes], int]]:
    """((feature index, token), count) of one batch's analyzer input (keys, counts)."""
    keys, counts = batch
    for key, count in zip(keys.tolist(), counts.tolist()):
        index, token = key.split(SEPARATOR, 1)
        yield (int(index), token), count


def _write_vocabularies(pair_counts: List[Tuple[Tuple[int, bytes], int]], directory: str,
                        filenames: Sequence[str]):
    """Writes `directory/<filename>` per feature in `tft.vocabulary`'s order; yields each path as a tagged output."""
    per_feature: List[list] = [[] for _ in filenames]
    for (index, token), count in pair_counts:
        per_feature[index].append((count, token))
    tf.io.gfile.makedirs(directory)
    for index, (filename, counts) in enumerate(zip(filenames, per_feature)):
        path = os.path.join(directory, filename)
        ordered = maybe_add_empty_vocabulary_dummy(sorted(counts, reverse=True), tf.string)
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(b"".join(token + b"\n" for _, token in ordered))
        yield beam.pvalue.TaggedOutput(str(index), np.array(path))
