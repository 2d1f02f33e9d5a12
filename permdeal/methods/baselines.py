"""The baselines the papers compare with, as registered methods with ``compare`` figures: dense
16-bit, EIE (pruning, 4-bit codebook, interleaved CSC), block-circulant (CirCNN / ReBoc) and SME
(bit-sliced sign-magnitude on crossbars). None of them writes model folders or has hardware
here; see docs/references.md for their sources."""

from __future__ import annotations

import dataclasses

import numpy as np

from permdeal.golden import cycles as pd_cycles
from permdeal.golden import eie, eie_cycles, sme
from permdeal.golden.circulant_train import circulant_accuracy, circulant_mlp, train_circulant
from permdeal.golden.crossbar import circulant_mapping, dense_mapping, lossless_adc_bits
from permdeal.golden.train import accuracy, train
from permdeal.golden.workloads import EIE

from . import figures
from .base import Built, Method, flag_context
from .energy import ACC_BITS, ACT_BITS


def _acc(weights, biases, data) -> float:
    return accuracy(figures.dense_mlp(list(zip(weights, biases))), data[2], data[3])


def fft_mults(k: int) -> int:
    """Real multiplies of an FFT (or inverse FFT) of ``k`` points: ``2 k ceil(log2 k)``."""
    return 2 * k * (k - 1).bit_length()


def pointwise_mults(k: int) -> int:
    """Real multiplies of the pointwise product of two real FFTs of ``k`` points: 4 per complex
    bin, 1 per real bin (bin 0, and bin ``k/2`` for even ``k``) of the ``floor(k/2) + 1``."""
    bins, real = k // 2 + 1, 1 + (k % 2 == 0 and k > 1)
    return 4 * (bins - real) + real


class DenseMethod(Method):
    name = "dense"
    label = "dense 16-bit"
    rule = ("storage: 16 bits per weight, no index. Multiplies and cycles: the PermDNN engine at "
            "p = 1 (column-wise, zero inputs skipped: m multiplies per non-zero input), cycles "
            "from its exact cycle model (golden.cycles); the JSON also gives m*n, the count "
            "without zero-skipping. Crossbars: golden.crossbar.dense_mapping.")

    def setting(self, st):
        return f"{figures.WEIGHT_BITS}-bit"

    def build(self, net, data, st):
        dense = [W for _, W, _ in net.model.dense_weights()]
        acc = {"float": accuracy(net.model, data[2], data[3])} if data else None
        return Built(dense, dense, net.model.biases, acc)

    def figures(self, obj, X, st, in_block):
        m, n = obj.shape
        nnz = np.count_nonzero(X, axis=1)
        cyc = [pd_cycles.layer_cycles(x, m, 1, st.engine, in_block).total for x in X]
        B, macs = st.multipliers, figures.mean(m * nnz)
        c = figures.Count()
        c.layer_io(n, m, figures.mean(nnz))
        c.macs(macs, m, B)
        c.access("weights", figures.WEIGHT_BITS, m * n * figures.WEIGHT_BITS, macs, banks=B,
                 stored=True)
        return {"storage_bits": m * n * figures.WEIGHT_BITS, "index_bits": 0,
                **figures.energy(c, st),
                "multiplies": figures.mean(m * nnz), "multiplies_no_skip": m * n,
                "cycles": figures.mean(cyc),
                **figures.mapping(dense_mapping((m, n), st.xbar), st.xbar)}

    def accuracy_note(self, acc, setting):
        return f"dense {figures.pct(acc['float'])}"


class EieMethod(Method):
    name = "eie"
    label = "EIE"
    rule = ("storage: interleaved CSC entries (4-bit codebook index + 4-bit relative row index, "
            "padding zeros included), column pointers of every PE and the 16-bit codebook "
            "(golden.eie EieMatrix.storage); index overhead: every row-index field, the padding "
            "entries' weight fields and the pointers. Multiplies: the CSC entries (padding "
            "included) of the columns whose input is non-zero, one PE cycle each (zero inputs "
            "skipped). Cycles: golden.eie_cycles' FIFO schedule on one PE per multiplier of the "
            "budget (rows interleaved over them), no pipeline or write-back latency. No "
            "crossbar mapping.")

    def setting(self, st):
        return (("published density" if st.density is None else f"{100 * st.density:g}%")
                + f", {EIE['codebook_bits']}-bit codebook")

    def build(self, net, data, st):
        model = net.model
        dense = [W for _, W, _ in model.dense_weights()]
        ft = data is not None and st.finetune_epochs > 0
        density = [net.eie_density if st.density is None else st.density] * len(dense)
        with flag_context("--density"):
            pruned = [eie.prune(W, d) for W, d in zip(dense, density)]
        tuned, biases = pruned, model.biases
        if ft:
            # Deep Compression's retraining before weight sharing: the zero pattern kept.
            m = train(figures.dense_mlp(list(zip(pruned, model.biases))), data[0], data[1],
                      grad_mask=[(W != 0)[..., None] for W in pruned],
                      epochs=st.finetune_epochs, seed=st.seed)
            tuned = [W for _, W, _ in m.dense_weights()]
            biases = m.biases
        mats = [eie.compress(W, d, n_pe=st.multipliers, random_state=st.seed)
                for W, d in zip(tuned, density)]
        floats = [e.to_float() for e in mats]
        acc = None
        if data:
            shared = [eie.compress(W, d, n_pe=st.multipliers, random_state=st.seed).to_float()
                      for W, d in zip(pruned, density)] if ft else floats
            acc = {"pruned_shared": _acc(shared, model.biases, data),
                   "float": _acc(floats, biases, data), "finetuned": ft,
                   "codebook_finetuned": False}
        return Built(mats, floats, biases, acc)

    def figures(self, obj, X, st, in_block):
        c = obj.csc
        per_col = c.slice_entries.sum(axis=0)
        pad_col = c.slice_padding.sum(axis=0)
        nz = X != 0
        runs = [eie_cycles.layer_cycles(c, x, st.fifo_depth) for x in X]
        s = obj.storage()
        return {**figures.energy(self.count(obj, X, st), st),"storage_bits": s["total_bits"], "index_bits": s["index_overhead_bits"],
                "multiplies": figures.mean(nz @ per_col),
                "padding_multiplies": figures.mean(nz @ pad_col),
                "cycles": figures.mean([r.actual for r in runs]),
                "ideal_cycles": figures.mean([r.ideal for r in runs]),
                "imbalance": figures.mean([r.imbalance for r in runs]), "n_pe": c.n_pe,
                "nonzero_weights": int(c.entries - c.padding), "storage": s}

    @staticmethod
    def count(obj, X, st) -> figures.Count:
        """EIE's events: per non-zero input, each PE reads its two column pointers and pushes
        the value through its FIFO (a write and a read); per CSC entry of that column (padding
        included), an entry read (codebook index and row index), a codebook read and a MAC."""
        csc, s = obj.csc, obj.storage()
        (m, n), pes = csc.shape, csc.n_pe
        nnz = figures.mean(np.count_nonzero(X, axis=1))
        entries = figures.mean((X != 0) @ csc.slice_entries.sum(axis=0))
        c = figures.Count()
        c.layer_io(n, m, nnz)
        c.access("activations", ACT_BITS, st.fifo_depth * ACT_BITS, 2 * pes * nnz, banks=1)
        c.access("index", s["pointer_width"], s["pointer_bits"], 2 * pes * nnz, banks=pes,
                 stored=True)
        c.access("weights", s["entry_bits"], s["entry_storage_bits"], entries, banks=pes,
                 stored=True)
        c.access("weights", figures.WEIGHT_BITS, s["codebook_storage_bits"], entries)
        c.macs(entries, m, pes)
        return c

    def accuracy_note(self, acc, setting):
        return (figures.tuned_note(self.label, "pruned_shared", acc)
                + " (pruned weights retrained with the mask fixed, codebook not fine-tuned)")


class CirculantMethod(Method):
    name = "circulant"
    label = "block-circulant"
    rule = ("storage: 16 bits per first-column value that reaches the matrix, no index. "
            "Multiplies: by FFT, as real multiplies: an FFT or inverse FFT of k points costs "
            "2 k ceil(log2 k) (a radix-2 complex FFT, k/2 log2 k butterflies of one 4-multiply "
            "complex twiddle product each, trivial twiddles included); the pointwise product of "
            "a block costs 4 per complex frequency bin and 1 per real bin (of the floor(k/2) + 1 "
            "bins of a real FFT, bin 0 and, for even k, bin k/2 are real); a block-column whose "
            "k inputs are all zero is skipped (its FFT and products), nothing else: FFT(x_J) for "
            "every non-zero input block, M' products per such block, one inverse FFT per "
            "block-row. Cycles: a simple model, multiplies / multipliers (every multiplier busy "
            "every cycle, no FFT pipeline or memory stalls). Crossbars: circulant_mapping (ReBoc "
            "storage, copies filling spare columns).")

    def setting(self, st):
        return f"k={st.k}"

    def build(self, net, data, st):
        return figures.projected_build(net, data, st, "--k", lambda m: circulant_mlp(m, st.k),
                                       train_circulant, circulant_accuracy, lambda m: m.layers)

    def figures(self, obj, X, st, in_block):
        (m, n), (mb, nb), k = obj.shape, obj.blocks, obj.k
        xb = np.pad(X != 0, ((0, 0), (0, nb * k - n))).reshape(len(X), nb, k)
        live = xb.any(axis=2).sum(axis=1)  # input blocks with a non-zero
        mults = live * (fft_mults(k) + mb * pointwise_mults(k)) + (live > 0) * mb * fft_mults(k)
        return {"storage_bits": obj.storage_bits(figures.WEIGHT_BITS), "index_bits": 0,
                **figures.energy(self.count(obj, live, st), st),
                "multiplies": figures.mean(mults),
                "cycles": figures.mean(-(-mults // st.multipliers)),
                "live_input_blocks": figures.mean(live), "fft_mults": fft_mults(k),
                "pointwise_mults": pointwise_mults(k),
                **figures.mapping(circulant_mapping((m, n), k, st.xbar), st.xbar)}

    @staticmethod
    def count(obj, live, st) -> figures.Count:
        """Block-circulant events (``live``: non-zero input blocks per input vector): per live
        block its k inputs read, an FFT (``2 k ceil(log2 k)`` multiplies, ``3 k ceil(log2 k)``
        adds: each butterfly's complex twiddle product and two complex adds), its k spectrum
        values written; per live block and block-row, the k stored weight-spectrum values and
        the k input-spectrum values read, the pointwise product (its multiplies, and as many
        adds with the accumulation) into k spectrum accumulators (read and written); per
        block-row an inverse FFT when any block is live. The FFTs' intermediate values stay in
        registers (not charged)."""
        (m, n), (mb, nb), k = obj.shape, obj.blocks, obj.k
        B, lg = st.multipliers, (k - 1).bit_length()
        blocks = figures.mean(live)
        pairs, iffts = blocks * mb, figures.mean((live > 0) * mb)
        c = figures.Count()
        c.layer_io(n, m, blocks * k)
        c.op("mult", ACT_BITS, (blocks + iffts) * fft_mults(k) + pairs * pointwise_mults(k))
        c.op("add", ACC_BITS, (blocks + iffts) * 3 * k * lg + pairs * pointwise_mults(k))
        c.access("activations", ACT_BITS, nb * k * ACT_BITS, blocks * k + pairs * k)
        c.access("weights", figures.WEIGHT_BITS, obj.storage_bits(figures.WEIGHT_BITS),
                 pairs * k, banks=B, stored=True)
        c.access("accumulators", ACC_BITS, mb * k * ACC_BITS, 2 * pairs * k, banks=B)
        return c

    def accuracy_note(self, acc, setting):
        return figures.tuned_note(self.label, "projected", acc)


class SmeMethod(Method):
    name = "sme"
    label = "SME"
    rule = ("storage: the cells (1 bit each) inside the matrix of the crossbars kept after "
            "squeeze-out (both polarities, every magnitude bit slice); index overhead: one bit "
            "per crossbar tile of the full grid (kept or squeezed out). Multiplies and cycles: "
            "none digital, the products are analog in the crossbars. Crossbars: golden.sme's "
            "count after squeeze-out; reads: one per input slice (every crossbar in parallel).")

    def setting(self, st):
        return (f"{st.xbar.weight_bits}-bit, cap {st.sme_cap or 'none'}, "
                f"squeeze <{st.sme_threshold}")

    def build(self, net, data, st):
        x = st.xbar
        sm, layers = sme.sme_model(net.model, x.weight_bits, st.sme_cap, st.sme_threshold,
                                   x.rows, x.cols)
        acc = {"float": accuracy(sm, data[2], data[3]), "finetuned": False} if data else None
        return Built(layers, [W for _, W, _ in sm.dense_weights()], sm.biases, acc)

    def figures(self, obj, X, st, in_block):
        m, n = obj.codes.mag.shape
        R, C = st.xbar.rows, st.xbar.cols
        # Squeeze-out zeroes the bits of every removed tile and keeps >= 1 bit in every kept
        # one, so the kept tiles are those of the final codes that hold a set bit.
        kept = sme.tile_counts(obj.codes, R, C) > 0
        rows_in = np.minimum(R, n - R * np.arange(kept.shape[2]))
        cols_in = np.minimum(C, m - C * np.arange(kept.shape[3]))
        cells = int((kept * np.multiply.outer(rows_in, cols_in)).sum())
        cfg = dataclasses.replace(st.xbar, cell_bits=1)
        lossless = lossless_adc_bits(min(n, R), 1, cfg.dac_bits)
        return {"storage_bits": cells, "index_bits": obj.crossbars_total, "multiplies": None,
                "cycles": None, "crossbars": obj.crossbars_squeezed,
                "crossbar_reads": cfg.input_slices, "used_cells": cells,
                "total_cells": obj.crossbars_squeezed * R * C,
                "crossbars_total": obj.crossbars_total,
                "crossbars_quantized": obj.crossbars_quantized,
                "crossbars_capped": obj.crossbars_capped, "bits_dropped": obj.bits_dropped,
                "adc_lossless_bits": lossless, "adc_exact": st.xbar.adc_bits >= lossless}

    def accuracy_note(self, acc, setting):
        return f"SME quantized, capped and squeezed, not fine-tuned {figures.pct(acc['float'])}"
