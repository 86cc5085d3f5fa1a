#!/bin/bash
# The phase-1 selection sweep behind bench/phase1_selection.md, in priority order. Each call
# appends to bench/phase1_selection.jsonl and skips the (dataset, rate, method, seed) runs it
# already holds, so stopping and rerunning this script extends the table. ~1 CPU-hour per
# dataset block at 1 thread; run from the repository root.
set -e
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# BCCD without Basophil (3 images: 0-1 per split); the 4 classes left are 207/88/33/20 images
BCCD="bccd=imagefolder:../shared/data/bccd_wbc/BCCD_cropped;class_names=[Eosinophil,Lymphocyte,Monocyte,Neutrophil]"
SYN10="synthetic_ir10=synthetic;imbalance_ratio=10"
SYN50="synthetic_ir50=synthetic;imbalance_ratio=50"
M=(ce coteaching "coteaching + class_aware" "coteaching + class_gmm" "coteaching + prototype"
   "coteaching + noise_quota" "coteaching + confident_learning" "coteaching + class_gmm + balanced loss")
run() { python -m bench.phase1_evidence --seeds 0 1 2 --out bench/phase1_selection.md "$@"; }
run --dataset "$BCCD" --rates 0.4 --variants "${M[@]}"
run --dataset digits --rates 0.4 --variants "${M[@]}"
run --dataset digits "$BCCD" --rates 0.4 --variants "coteaching_vog + class_gmm"
# the rest of the grid with the default and its two references first (CE, loss-only Co-teaching)
C=(ce coteaching "coteaching + class_gmm")
run --dataset retinamnist --rates 0.4 --variants "${C[@]}"
run --dataset "$SYN10" "$SYN50" --rates 0.4 --variants "${C[@]}"
run --dataset digits "$BCCD" retinamnist "$SYN10" "$SYN50" --rates 0.2 --variants "${C[@]}"
# the above-chance guard on class_gmm, in every mask and in C only (lnl.keep_above_chance)
G=("coteaching + class_gmm + above chance" "coteaching + class_gmm + above chance in C")
run --dataset "$BCCD" --rates 0.4 0.2 --variants "${G[@]}"
run --dataset digits retinamnist --rates 0.4 --variants "${G[@]}"
run --dataset digits "$BCCD" retinamnist "$SYN10" "$SYN50" --rates 0.6 --variants "${C[@]}"
# the guard in C (the default since the phase-2 re-run) at 0.6 and on the synthetic sets
run --dataset "$BCCD" digits retinamnist "$SYN10" --rates 0.6 --variants "${G[1]}"
run --dataset "$SYN10" "$SYN50" --rates 0.4 --variants "${G[1]}"
run --dataset digits --rates 0.2 --variants "${G[1]}"
run --dataset retinamnist "$SYN10" "$SYN50" --rates 0.2 --variants "${G[1]}"
run --dataset "$SYN50" --rates 0.6 --variants "${G[1]}"
# then every rule there
run --dataset retinamnist --rates 0.4 --variants "${M[@]}"
run --dataset "$BCCD" --rates 0.2 0.6 --variants "${M[@]}"
run --dataset "$SYN10" "$SYN50" --rates 0.4 --variants "${M[@]}"
run --dataset retinamnist digits --rates 0.2 --variants "${M[@]}"
run --dataset "$SYN10" "$SYN50" --rates 0.2 --variants "${M[@]}"
run --dataset "$SYN10" --rates 0.6 --variants "${M[@]}"
run --dataset digits retinamnist "$SYN50" --rates 0.6 --variants "${M[@]}"
