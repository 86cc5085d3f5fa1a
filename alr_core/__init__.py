"""alr — active label refinement for noisy, imbalanced medical image classification.

The library behind the DVC stages in ``stages/``: every piece of logic lives here, in small
modules with one job each, so that it can be tested without running the pipeline.
"""

import os

# torch's CPU kernels run on GNU OpenMP, whose idle threads spin for ~300k iterations before
# sleeping. When other processes share the cores, a spinning thread steals the time slice of the
# thread that still has work, and every parallel region waits for it: the default lnl_train took
# 17× longer beside one busy process on 2 cores. A short spin keeps the idle speed and makes the
# slow-down follow the CPU actually lost (bench/contention.md). Set before torch is imported
# anywhere; a value the user exported wins.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")
