"""Stage fingerprint (runs on every `dvc repro`): the files under data.path →
data/source/fingerprint.json, the MD5 of each file the source reads; a `model.init` weights
file → data/source/model_init.json, its MD5.

prepare depends on the first, so a changed, added, removed or renamed image, manifest or npz
re-runs prepare and everything after it, and an unchanged folder re-runs nothing; lnl_train and
the retrain stages depend on the second, so new weights under the same file name re-run them.
Files whose size, times and inode are unchanged keep their hash from data/source/stat_cache.json."""

import time

from alr_core.common import artifacts, paths
from alr_core.common.cli import no_arguments, run_stage
from alr_core.common.params import load_params
from alr_core.common.text import counted
from alr_core.common.upgrade import check_moved_outputs
from alr_core.data.fingerprint import fingerprint, init_fingerprint, read_stat_cache
from alr_core.data.sources import source_files


def main() -> None:
    no_arguments(__doc__)
    params = load_params(paths.PARAMS)
    check_moved_outputs()  # fingerprint runs first: a project an earlier alr ran stops before any work
    start = time.perf_counter()
    files = source_files(params.data)
    known = read_stat_cache(paths.SOURCE_STAT_CACHE)
    hashes, stat_cache, hashed = fingerprint(files, known)
    init, init_cache = init_fingerprint(params.model.init, known)
    artifacts.write_json(paths.SOURCE_FINGERPRINT, {"source": params.data.source, "files": hashes})
    artifacts.write_json(paths.INIT_FINGERPRINT, init)
    artifacts.write_json(paths.SOURCE_STAT_CACHE, stat_cache | init_cache)
    seconds = time.perf_counter() - start
    if not files:
        print(f"data.source {params.data.source}: built in, no files to check")
    else:
        print(f"{params.data.path}: {counted(len(files), 'file')} checked in {seconds:.1f} s "
              f"({hashed} hashed, {len(files) - hashed} unchanged since the last check)")  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
