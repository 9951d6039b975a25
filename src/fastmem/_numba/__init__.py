"""Numba kernels: the same names, arguments and results as ``fastmem._core``.

Used when fastmem was installed without the C++ extension, or when
``FASTMEM_BACKEND=numba``. Each public function checks the contract the
Python layer promises (dtype, C order, shapes) exactly as the compiled
bindings do, then calls a ``parallel=True`` JIT kernel.
"""

from __future__ import annotations

import numba

from .critical import crit_activate as crit_activate
from .critical import crit_backward as crit_backward
from .critical import crit_backward_err as crit_backward_err
from .critical import crit_ball as crit_ball
from .critical import crit_centre as crit_centre
from .critical import crit_check as crit_check
from .critical import crit_concretize as crit_concretize
from .critical import crit_interval as crit_interval
from .critical import crit_radius_share as crit_radius_share
from .critical import crit_random_start as crit_random_start
from .critical import crit_relax as crit_relax
from .critical import crit_step as crit_step
from .information import bin_codes as bin_codes
from .information import bin_keys as bin_keys
from .information import bin_plane as bin_plane
from .information import bin_rows_equal as bin_rows_equal
from .information import kde_screen as kde_screen
from .information import kde_sparse_tile as kde_sparse_tile
from .information import kde_tile as kde_tile
from .memorize import cover_gains as cover_gains
from .memorize import cover_margins as cover_margins
from .memorize import cover_matrix as cover_matrix
from .memorize import cover_step as cover_step
from .memorize import cover_walks as cover_walks
from .memorize import linear_recurrence as linear_recurrence
from .memorize import relu_sum_eval as relu_sum_eval
from .memorize import threshold_pack as threshold_pack
from .memorize import threshold_votes as threshold_votes
from .patterns import apply_activation, hash_patterns, pack_and_activate, snap_thresholds
from .plane import plane_children as plane_children
from .plane import plane_cut as plane_cut
from .plane import plane_cut_count as plane_cut_count
from .plane import plane_cut_emit as plane_cut_emit
from .plane import plane_decide as plane_decide
from .regions import breakpoint_causes as breakpoint_causes
from .regions import chain_values as chain_values
from .regions import collect_crossings as collect_crossings
from .regions import count_crossings as count_crossings
from .regions import emit_pieces as emit_pieces
from .regions import next_preactivations as next_preactivations
from .regions import next_preactivations_sparse as next_preactivations_sparse

numba_version = numba.__version__

__all__ = [
    "apply_activation",
    "bin_codes",
    "bin_keys",
    "bin_plane",
    "bin_rows_equal",
    "breakpoint_causes",
    "chain_values",
    "collect_crossings",
    "count_crossings",
    "cover_gains",
    "cover_margins",
    "cover_matrix",
    "cover_step",
    "cover_walks",
    "crit_activate",
    "crit_backward",
    "crit_backward_err",
    "crit_ball",
    "crit_centre",
    "crit_check",
    "crit_concretize",
    "crit_interval",
    "crit_radius_share",
    "crit_random_start",
    "crit_relax",
    "crit_step",
    "emit_pieces",
    "hash_patterns",
    "kde_screen",
    "kde_sparse_tile",
    "kde_tile",
    "linear_recurrence",
    "next_preactivations",
    "next_preactivations_sparse",
    "numba_version",
    "pack_and_activate",
    "plane_children",
    "plane_cut",
    "plane_cut_count",
    "plane_cut_emit",
    "plane_decide",
    "relu_sum_eval",
    "snap_thresholds",
    "threshold_pack",
    "threshold_votes",
]
