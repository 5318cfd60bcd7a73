"""A run's settings in TensorBoard's HParams tab, so runs are compared by what made them, not by folder name.

Each new run writes one session-start summary of the hparams plugin (tag
`_hparams_/session_start_info`, step 0) into its run folder's event file:
every scalar setting of its runargs (model, decoder options, train, data,
replicas, by their flag names: encoder, decoder, learnrate, lr_schedule,
loss, class_weights, pixels, batch_size, seed, precision, ...) and the code
version and TensorFlow version that made it.  No experiment summary is
written: runs linked side by side by tboards/createlinks come from separate
processes, and TensorBoard then builds the HParams table from all their
session infos, with each run's scalar tags (val_mIoU, the quarter-validation
mIoU, first among them) as its metrics.
"""
import dataclasses
import time

from tensorboard.plugins.hparams import summary_v2

from utils.compat import software

# Settings that are not scalars (lists, dicts) or not set (None) have no HParams column.
SCALARS = (bool, int, float, str)


def run_hparams(config):
    """{flag name: value} of every scalar setting of `config` (a RunConfig), plus `code` and `tensorflow`.

    Sections are read in this order and a name already taken keeps its first value (replicas repeat
    train's lr_scaling and sync_batch_norm)."""
    model = config.model.to_dict()
    sections = (model, model.get("decoder_options") or {}, dataclasses.asdict(config.train), config.data.to_dict(),
                config.replicas)
    values = {"net_name": config.net_name}
    for section in sections:
        for name, value in section.items():
            if isinstance(value, SCALARS) and name not in values:
                values[name] = value
    provenance = config.provenance
    if provenance.get("code") is not None:
        values["code"] = software.describe(provenance["code"])
    tensorflow = (provenance.get("versions") or {}).get("tensorflow")
    if tensorflow:
        values["tensorflow"] = tensorflow
    return values


def session_start_summary(config, start_time_secs=None):
    """The serialized hparams-plugin Summary of the run (its group is the run's own: a hash of the values)."""
    summary = summary_v2.hparams_pb(run_hparams(config),
                                    start_time_secs=time.time() if start_time_secs is None else start_time_secs)
    return summary.SerializeToString()


def write_session_start(writer, config):
    """Add the run's hparams to a tf.summary.FileWriter at step 0 (once per run: a resumed run has them)."""
    writer.add_summary(session_start_summary(config), 0)
    writer.flush()
