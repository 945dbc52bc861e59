"""The (train, test) pair a command works on: Colored-MNIST or a user's image folder."""

from __future__ import annotations

from pathlib import Path

import torch

from obfaudit.errors import ObfauditError


def load_task_data(
    data: str,
    *,
    seed: int,
    data_root: Path | None = None,
    attributes: Path | None = None,
    size: int | None = None,
    attribute: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    download: bool = False,
):
    """(train, test, attribute, task) of ``data``: a registered dataset with a sensitive attribute
    (e.g. ``colored-mnist``, split with ``seed``), or a folder DIR with DIR/train, DIR/test and an
    attributes CSV; each cut to its first N images."""
    from obfaudit.data.attributes import TASK, load_attribute_folder
    from obfaudit.data.registry import dataset_names, dataset_spec

    if data in dataset_names():
        spec = dataset_spec(data)
        if not spec.attributes:
            with_one = ", ".join(n for n in dataset_names() if dataset_spec(n).attributes)
            raise ObfauditError(
                f"{data} has no sensitive attribute to read, so there is no verdict to give; "
                f"audit a dataset with one ({with_one}) or a folder with an attributes CSV"
            )
        kw = {"seed": seed, "data_root": data_root, "download": download}
        if spec.sized:
            kw["size"] = size
        train, test = spec.load("train", **kw), spec.load("test", **kw)
        task, default = spec.task, spec.attributes[0]  # the dataset's own first sensitive attribute
    else:
        root = Path(data)
        if not root.is_dir():
            raise ObfauditError(
                f"--data {data}: neither a dataset ({', '.join(dataset_names())}) nor a folder"
            )
        kw = {"attributes": attributes, "size": size}
        train, test = load_attribute_folder(root, "train", **kw), load_attribute_folder(root, "test", **kw)
        task, default = TASK, None  # the CSV's first attribute column
    if n_train:
        train = train.subset(slice(0, n_train))
    if n_test:
        test = test.subset(slice(0, n_test))
    names = [k for k in test.labels if k != task]
    attribute = attribute or default or (names[0] if names else None)
    if attribute is None:
        raise ObfauditError(f"--data {data}: its attributes CSV has no attribute column beside the path")
    if attribute not in names:
        raise ObfauditError(f"--attribute {attribute!r}: the data has {', '.join(names) or 'no attributes'}")
    return train, test, attribute, task


def load_job_data(job, *, seed: int, n_train: int | None = None, n_test: int | None = None):
    """:func:`load_task_data` with the data settings a command's job carries (``data``,
    ``data_root``, ``attributes``, ``size``, ``attribute``)."""
    return load_task_data(
        job.data,
        seed=seed,
        data_root=job.data_root,
        attributes=job.attributes,
        size=job.size,
        attribute=job.attribute,
        n_train=n_train,
        n_test=n_test,
    )


def labels_match(test, labels: dict[str, list[int]]) -> bool:
    """Whether ``test``'s labels are ``labels`` (a record's copy): the same images, in order."""
    return all(
        name in test.labels
        and torch.equal(test.labels[name], torch.tensor(values, dtype=test.labels[name].dtype))
        for name, values in labels.items()
    )
