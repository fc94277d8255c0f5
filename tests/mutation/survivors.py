"""Why each surviving mutant stays: equivalent, or not worth a test.

A survivor is named by its module, function, cosmic-ray operator and the
source line before and after the change (whitespace stripped), so an entry
outlives edits elsewhere in the file. A reason starts with 'equivalent'
when no input can tell the mutant from the code (those leave the score's
denominator), else with 'not worth a test' and why.
"""

_UPLOADS = 'fedmchain_jax/uploads.py'
_CLIENT = 'fedmchain_jax/client.py'
_ROUNDS = 'fedmchain_jax/algorithms/rounds.py'
_COMPRESSION = 'fedmchain_jax/compression.py'
_CHECKPOINTING = 'fedmchain_jax/checkpointing.py'
_SAMPLING = 'fedmchain_jax/data/federated.py'
_LAYOUT = ('equivalent: replicating changes where the rows lie, not their '
           'values (a no-op without a mesh; 1 device == 8 devices is tested)')
_CLAMPED = ('equivalent: JAX clamps a static out-of-range index, so index 1 of '
            'an axis of length 1 reads its only entry')
_LAST_IS_FIRST = ('equivalent: the gathered axis has length 1, so index 0 and '
                  '-1 are the same entry')
_PADDING_ROW = ('equivalent: the row matters only for a padding client '
                '(weight 0), which may read any client\'s finite examples; '
                'JAX clamps a gather past the last row')

_PADDED_MAX = ('equivalent: the padding is int32 max, which no candidate '
               'exceeds, so padding of any length or place counts nowhere '
               '(the counts take any length)')
_LOW_RANK_BELOW_TOP = ('equivalent: floor((1 - rho - spread) n) - 1 is at '
                       'most n - 2 for rho > 0, so the upper clip never binds')
_HIGH_RANK_ABOVE_ZERO = ('equivalent: ceil((1 - rho + spread) n) is at '
                         'least 1 (spread > 0), so a lower clip of -1, 0 or 1 '
                         'never binds')
_BISECTION = ('not worth a test: the midpoint is taken only when f_lo <= f_hi; '
              'f_lo starts above 0 and stays >= 0, so that needs the '
              'sample\'s clipped high end to over-predict its count, and '
              'normal, Cauchy and cubed-Cauchy vectors of 5e4-1e5 entries at '
              'rho 2e-5 to 2e-4 never changed the threshold under any of '
              'these variants')
_SIDE_SIGN = ('equivalent: `side` is only compared with 0, so any positive '
              'or negative marker reads the same')
_RHO_ONE_GUARD = ('equivalent: rho >= 1 gives k >= P, so the "at most k '
                  'non-zero entries" guard already returns 0; applying the '
                  'rho >= 1 line to a static rho < 1, or skipping it for a '
                  'traced one, changes nothing')

_SSCA = 'fedmchain_jax/ssca.py'
_AGGREGATORS = 'fedmchain_jax/aggregators.py'
_SPEED_ONLY = ('equivalent: how the agreement products are laid out; every '
               'setting gives the same bits (test_every_agreement_form_is_'
               'exact), and without a mesh rows_sharded selects nothing')
_MESH_SPLIT = ('equivalent: the mesh\'s column split and the plain one give '
               'the same update bitwise (test_scale: 1 device == 8 devices); '
               'without a mesh the test stops at `mesh is not None`')
_OUT_OF_SEGMENT = ('equivalent: inactive clients carry label C, the segment '
                   'that [:C] drops (segment_sum drops ids past '
                   'num_segments), so neither their weight nor one segment '
                   'more or fewer changes a kept one')
_EMPTY_GROUP = ('equivalent: a group of weight 0 has no active member '
                '(active clients weigh > 0, the others carry label C), so its '
                'membership row is all False under either comparison')
_INERT_FILL = ('equivalent: rows outside every kept group, or of '
               'non-senders, have weight 0 in every product (and client sign '
               '0), so any finite fill adds nothing; 0 keeps a NaN row out')
_ZERO_DENOMINATOR = ('equivalent: where the denominator is 0 the numerator is '
                     '0 too (the same weights over agreeing entries, or an '
                     'empty group), and the outer where returns 0 there '
                     'whatever is divided')
_EMPTY_MEDIAN = ('equivalent: differs only for at most one sender, where '
                 '(count - 1) // 2 is 0 either way or the result is the '
                 'where\'s 0')

_LAYOUT_EXACT = ('equivalent: a layout choice of the agreement products '
                 '(operand type, row groups and where they are cut, block '
                 'size, when to block): every form gives the same counts bit '
                 'for bit (test_every_agreement_form_is_exact, test_default_'
                 'agreement_layouts_are_exact_on_every_backend)')
_PACK_BODY = ('equivalent: the body is a multiple of 1,024 (never 1 or -1), '
              'and a negative one slices nothing off the front and all of '
              'the row into the tail, padded the same: the same words')
_FIELD_SUMS = ('not worth a test: summing the words\' 11-bit fields over the '
               'other axis first gives the same totals while no field passes '
               '2,047, i.e. for blocks up to 2^16 entries (bits_block is at '
               'most 32,768); only an explicit larger block could tell')

REASONS = {
    (_UPLOADS, '_every_entry', 'NumberReplacer',
     'return jnp.where(holders, 0.0, jnp.inf).astype(jnp.float32)',
     'return jnp.where(holders, -1.0, jnp.inf).astype(jnp.float32)'):
        'equivalent: |x| >= -1 holds wherever |x| >= 0 does (rows are '
        'finite), so a holder still sends every non-zero entry',
    (_UPLOADS, 'store_residuals', 'ReplaceTrueWithFalse',
     'order = jnp.argsort(~inside, stable=True)  # Inside rows first, in '
     'order.',
     'order = jnp.argsort(~inside, stable=False)  # Inside rows first, in '
     'order.'):
        'equivalent: inside rows still come first, and a cohort never holds '
        'an id twice (drawn without replacement), so the order the rows are '
        'written in cannot change the table',
    (_UPLOADS, 'store_residuals', 'ReplaceComparisonOperator_NotEq_Eq',
     "if jax.default_backend() != 'cpu':",
     "if jax.default_backend() == 'cpu':"):
        'equivalent: the scatter and the row-by-row loop store the same '
        'table (test_residuals_stored_row_by_row_are_the_scatters); the '
        'branch picks the faster one per backend',
    (_UPLOADS, 'store_residuals', 'NumberReplacer',
     'inside = (ids >= 0) & (ids < table.shape[0])',
     'inside = (ids >= -1) & (ids < table.shape[0])'):
        'not worth a test: cohort ids are population indices or PADDING_ID '
        '(int32 max); no caller passes a negative id',
    (_UPLOADS, 'top_fraction', 'ReplaceComparisonOperator_GtE_Gt',
     'dense = isinstance(rho, (int, float)) and rho >= 1.0',
     'dense = isinstance(rho, (int, float)) and rho > 1.0'):
        'equivalent: at rho = 1 magnitude_threshold returns 0 itself, so '
        'the sparse path sends every non-zero entry too; the shortcut only '
        'skips the counts',
    (_UPLOADS, 'store_residuals', 'AddNot',
     "if jax.default_backend() != 'cpu':",
     "if not jax.default_backend() != 'cpu':"):
        'equivalent: swaps the two paths, which store the same table',
    (_UPLOADS, 'top_fraction', 'NumberReplacer',
     'dense = isinstance(rho, (int, float)) and rho >= 1.0',
     'dense = isinstance(rho, (int, float)) and rho >= 2.0'):
        'equivalent: rho is at most 1, and at rho = 1 the sparse path sends '
        'every non-zero entry too (magnitude_threshold returns 0)',
    (_CLIENT, 'scan_steps', 'NumberReplacer', 'if num_steps == 1:',
     'if num_steps == 0:'):
        'equivalent: one step then goes through a scan over no steps, which '
        'returns the carry and empty metrics: the same result',
    (_CLIENT, 'update', 'NumberReplacer',
     'return branches[0](params, batches, present, key)',
     'return branches[ -1](params, batches, present, key)'):
        'equivalent: the line runs only when there is one branch',
    (_CLIENT, 'num_steps_of', 'NumberReplacer',
     'return jax.tree.leaves(batches)[0].shape[0]',
     'return jax.tree.leaves(batches)[ -1].shape[0]'):
        'equivalent: every leaf of a client\'s batches has the S steps as '
        'its leading axis',
    (_ROUNDS, '_prepare', 'ReplaceFalseWithTrue',
     '(trained.rows, trained.outside), weights, zero_deltas=False)',
     '(trained.rows, trained.outside), weights, zero_deltas=True)'):
        'equivalent: it zeroes the excluded clients\' rows, which have '
        'weight 0 and which upload.prepare then zeroes anyway (the Upload '
        'contract); False saves that pass',
    (_ROUNDS, '_upload_and_aggregate', 'ReplaceAndWithOr',
     'replicated = placement.mesh is not None and not placement.rows_sharded',
     'replicated = placement.mesh is not None or not placement.rows_sharded'):
        _LAYOUT,
    (_CLIENT, 'num_steps_of', 'NumberReplacer',
     'return jax.tree.leaves(batches)[0].shape[0]',
     'return jax.tree.leaves(batches)[ 1].shape[0]'):
        'equivalent: every leaf of a client\'s batches has the S steps as '
        'its leading axis',
    (_CLIENT, 'update', 'NumberReplacer', 'if len(branches) == 1:',
     'if len(branches) == 0:'):
        'equivalent: one branch then goes through lax.switch at index '
        'round % 1 = 0, the same branch',
    (_ROUNDS, '_upload_and_aggregate', 'ReplaceComparisonOperator_IsNot_Is',
     'replicated = placement.mesh is not None and not placement.rows_sharded',
     'replicated = placement.mesh is None and not placement.rows_sharded'):
        _LAYOUT,
    (_ROUNDS, '_upload_and_aggregate', 'ReplaceUnaryOperator_Delete_Not',
     'replicated = placement.mesh is not None and not placement.rows_sharded',
     'replicated = placement.mesh is not None and  placement.rows_sharded'):
        _LAYOUT,
    (_ROUNDS, '_upload_and_aggregate', 'AddNot',
     'if replicated:  # The rows gathered once, for the store and the sums.',
     'if not replicated:  # The rows gathered once, for the store and the '
     'sums.'):
        _LAYOUT,
    (_ROUNDS, 'aggregate', 'NumberReplacer',
     'size = num_real_clients or cohort.weights.shape[0]',
     'size = num_real_clients or cohort.weights.shape[ -1]'):
        'equivalent: weights is one-dimensional, [C]',
    (_ROUNDS, 'aggregate', 'ReplaceOrWithAnd',
     'size = num_real_clients or cohort.weights.shape[0]',
     'size = num_real_clients and cohort.weights.shape[0]'):
        'not worth a test: size is read only on a mesh in '
        '"replicated" mode (placement.for_sum), where it drops the zero-'
        'weight padding rows before the sums; test_eight_devices_match_one '
        'checks those bits in an 8-device subprocess, too slow for every '
        'mutant',
    (_ROUNDS, 'run_cohort', 'NumberReplacer',
     'size = cohort.weights.shape[0]', 'size = cohort.weights.shape[ -1]'):
        'equivalent: weights is one-dimensional, [C]',
    (_ROUNDS, '_upload_and_aggregate', 'NumberReplacer',
     "metrics['comm/kept_fraction'] = kept_total / jnp.maximum(sent_total, "
     "1.0)",
     "metrics['comm/kept_fraction'] = kept_total / jnp.maximum(sent_total, "
     "2.0)"):
        'not worth a test: differs only when the whole cohort sends fewer '
        'than 2 entries (one client holding a one-parameter model); with no '
        'sender both give 0',
    (_CLIENT, 'loss_fn', 'NumberReplacer',
     'q_y = jnp.take_along_axis(q, label[:, None], axis=1)[:, 0]',
     'q_y = jnp.take_along_axis(q, label[:, None], axis=1)[:, 1]'):
        _CLAMPED,
    (_CLIENT, 'loss_fn', 'NumberReplacer',
     'jax.nn.softmax(z), label[:, None], axis=1)[:, 0], 0.0))',
     'jax.nn.softmax(z), label[:, None], axis=1)[:, -1], 0.0))'):
        _LAST_IS_FIRST,
    (_CLIENT, '_ogm_coefficients', 'NumberReplacer',
     'ratio = scores[m] / jnp.maximum(other_sum / jnp.maximum(other_count, '
     '1),',
     'ratio = scores[m] / jnp.maximum(other_sum / jnp.maximum(other_count, '
     '0),'):
        'equivalent: with no other modality the ratio becomes NaN instead of '
        'huge, but dominant is then False (other_count > 0) and every use '
        'selects the unmodulated value',
    (_CLIENT, '_ogm_coefficients', 'NumberReplacer',
     'ratio = scores[m] / jnp.maximum(other_sum / jnp.maximum(other_count, 1),'
     ' / 1e-12)',
     'ratio = scores[m] / jnp.maximum(other_sum / jnp.maximum(other_count, 1),'
     ' -0.999999999999)'):
        'not worth a test: differs only when the other modalities\' mean '
        'summed confidence is below 1e-12, where the ratio is at least 1e12 '
        'times s_m and 1 - tanh(alpha r) is 0 in float32 either way',
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'k = xp.maximum(xp.float32(1), xp.ceil(rho * xp.float32(size)))',
     'k = xp.maximum(xp.float32( 0), xp.ceil(rho * xp.float32(size)))'):
        'equivalent: rho > 0, so ceil(rho P) is at least 1 anyway',
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'xp.float32(samples)) - 1, 0, samples - 1)',
     'xp.float32(samples)) - 1, 0, samples - 2)'):
        'equivalent: floor((1 - rho - spread) n) - 1 is at most n - 2 for '
        'rho > 0, so the upper clip never binds',
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'threshold = jnp.where(rho >= 1.0, 0.0, threshold)',
     'threshold = jnp.where(rho >= 1.0, -1.0, threshold)'):
        'equivalent: |x| >= -1 holds wherever |x| >= 0 does, so every '
        'non-zero entry is still sent',
    (_COMPRESSION, 'false_position', 'ReplaceComparisonOperator_GtE_Gt',
     'up = f >= 0', 'up = f > 0'):
        'equivalent: differs only when t keeps exactly k entries; then '
        'either end becomes t with f = 0, the search stays there, and the '
        'end nearer k (that one) is returned',
    (_COMPRESSION, 'false_position', 'NumberReplacer',
     't = jnp.where(f_lo > f_hi, (lo * f_hi - hi * f_lo) / (f_hi - f_lo), '
     '/ 0.5 * (lo + hi))',
     't = jnp.where(f_lo > f_hi, (lo * f_hi - hi * f_lo) / (f_hi - f_lo), '
     '1.5 * (lo + hi))'):
        'not worth a test: the bisection branch needs f_lo <= f_hi with '
        'lo < hi, i.e. the sample\'s predicted count at the high end above '
        'the measured count at the low end (rho below 1 / samples on a '
        'skewed sample); the kept count stays within the tested bound',
    (_COMPRESSION, 'magnitude_order_statistics', 'NumberReplacer',
     'bits = jnp.pad(bits, (0, -bits.shape[0] % blockwise.COUNT_WIDTH),',
     'bits = jnp.pad(bits, ( 1, -bits.shape[0] % blockwise.COUNT_WIDTH),'):
        _PADDED_MAX,
    (_COMPRESSION, 'magnitude_order_statistics',
     'ReplaceUnaryOperator_Delete_USub',
     'bits = jnp.pad(bits, (0, -bits.shape[0] % blockwise.COUNT_WIDTH),',
     'bits = jnp.pad(bits, (0, bits.shape[0] % blockwise.COUNT_WIDTH),'):
        _PADDED_MAX,
    (_COMPRESSION, 'magnitude_order_statistics', 'NumberReplacer',
     'found = jax.lax.fori_loop(0, 31, take_bit, jnp.zeros_like(ranks))',
     'found = jax.lax.fori_loop(0, 32, take_bit, jnp.zeros_like(ranks))'):
        'equivalent: a 32nd pass shifts 1 left by -1, which XLA defines as '
        '0, so its candidate is the prefix already taken',
    (_COMPRESSION, 'magnitude_threshold', 'ReplaceComparisonOperator_GtE_Gt',
     'if static and rho >= 1.0:', 'if static and rho > 1.0:'):
        'equivalent: at rho = 1, k = P, so the search ends in the '
        '"at most k non-zero entries" case and returns 0 as the shortcut does',
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'xp.float32(samples)) - 1, 0, samples - 1)',
     'xp.float32(samples)) - 1, 0, samples - 0)'):
        _LOW_RANK_BELOW_TOP,
    (_COMPRESSION, 'magnitude_threshold', 'ReplaceBinaryOperator_Sub_Add',
     'xp.float32(samples)) - 1, 0, samples - 1)',
     'xp.float32(samples)) - 1, 0, samples + 1)'):
        _LOW_RANK_BELOW_TOP,
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'xp.float32(samples)), 0, samples - 1)',
     'xp.float32(samples)), 1, samples - 1)'):
        _HIGH_RANK_ABOVE_ZERO,
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'xp.float32(samples)), 0, samples - 1)',
     'xp.float32(samples)), -1, samples - 1)'):
        _HIGH_RANK_ABOVE_ZERO,
    (_COMPRESSION, 'false_position', 'ReplaceComparisonOperator_Gt_GtE',
     't = jnp.where(f_lo > f_hi, (lo * f_hi - hi * f_lo) / (f_hi - f_lo),',
     't = jnp.where(f_lo >= f_hi, (lo * f_hi - hi * f_lo) / (f_hi - f_lo),'):
        _BISECTION,
    (_COMPRESSION, 'false_position', 'NumberReplacer',
     't = jnp.where(f_lo > f_hi, (lo * f_hi - hi * f_lo) / (f_hi - f_lo), '
     '/ 0.5 * (lo + hi))',
     't = jnp.where(f_lo > f_hi, (lo * f_hi - hi * f_lo) / (f_hi - f_lo), '
     '-0.5 * (lo + hi))'):
        _BISECTION,
    (_COMPRESSION, 'false_position', 'ReplaceBinaryOperator_Add_Sub',
     '0.5 * (lo + hi))', '0.5 * (lo - hi))'):
        _BISECTION,
    (_COMPRESSION, 'false_position', 'ReplaceBinaryOperator_Mul_Div',
     '0.5 * (lo + hi))', '0.5 / (lo + hi))'):
        _BISECTION,
    (_COMPRESSION, 'false_position', 'NumberReplacer',
     'up = f >= 0', 'up = f >= 1'):
        'equivalent: f is a count minus the integer k, so f >= 1 differs '
        'from f >= 0 only where t keeps exactly k entries; then either end '
        'becomes t with f = 0, the search stays there, and that end is '
        'returned',
    (_COMPRESSION, 'false_position', 'NumberReplacer',
     'jnp.where(up, 1, -1))', 'jnp.where(up, 2, -1))'):
        _SIDE_SIGN,
    (_COMPRESSION, 'false_position', 'NumberReplacer',
     'jnp.where(up, 1, -1))', 'jnp.where(up, 1, - 2))'):
        _SIDE_SIGN,
    (_COMPRESSION, 'magnitude_threshold', 'AddNot',
     'if not static:', 'if not not static:'):
        _RHO_ONE_GUARD,
    (_COMPRESSION, 'magnitude_threshold', 'ReplaceUnaryOperator_Delete_Not',
     'if not static:', 'if  static:'):
        _RHO_ONE_GUARD,
    (_SSCA, 'connected_components', 'NumberReplacer',
     'size = adjacency.shape[0]',
     'size = adjacency.shape[ 1]'):
        'equivalent: the adjacency is square, [C, C]',
    (_SSCA, 'connected_components', 'NumberReplacer',
     'size = adjacency.shape[0]',
     'size = adjacency.shape[ -1]'):
        'equivalent: the adjacency is square, [C, C]',
    (_SSCA, 'ssca', 'ReplaceFalseWithTrue',
     'materialize: bool = False,',
     'materialize: bool = True,'):
        _SPEED_ONLY,
    (_SSCA, 'ssca', 'ReplaceFalseWithTrue',
     'rows_sharded: bool = False,',
     'rows_sharded: bool = True,'):
        _SPEED_ONLY,
    (_SSCA, 'ssca', 'ReplaceComparisonOperator_Gt_Lt',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 1',
     'if (mesh is not None and mesh.shape.get(axis, 1) < 1'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'ReplaceComparisonOperator_Gt_LtE',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 1',
     'if (mesh is not None and mesh.shape.get(axis, 1) <= 1'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'ReplaceComparisonOperator_Gt_GtE',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 1',
     'if (mesh is not None and mesh.shape.get(axis, 1) >= 1'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 1',
     'if (mesh is not None and mesh.shape.get(axis, 2) > 1'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 1',
     'if (mesh is not None and mesh.shape.get(axis, 0) > 1'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 1',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 2'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 1',
     'if (mesh is not None and mesh.shape.get(axis, 1) > 0'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'ReplaceUnaryOperator_Delete_Not',
     'and not rows_sharded):',
     'and  rows_sharded):'):
        _MESH_SPLIT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'jnp.where(active, weights, 0.0), labels, num_segments=size + 1)[:size]',
     'jnp.where(active, weights, 1.0), labels, num_segments=size + 1)[:size]'):
        _OUT_OF_SEGMENT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'jnp.where(active, weights, 0.0), labels, num_segments=size + 1)[:size]',
     'jnp.where(active, weights, -1.0), labels, num_segments=size + 1)[:size]'):
        _OUT_OF_SEGMENT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'jnp.where(active, weights, 0.0), labels, num_segments=size + 1)[:size]',
     'jnp.where(active, weights, 0.0), labels, num_segments=size + 2)[:size]'):
        _OUT_OF_SEGMENT,
    (_SSCA, 'ssca', 'NumberReplacer',
     'jnp.where(active, weights, 0.0), labels, num_segments=size + 1)[:size]',
     'jnp.where(active, weights, 0.0), labels, num_segments=size + 0)[:size]'):
        _OUT_OF_SEGMENT,
    (_SSCA, 'ssca', 'ReplaceComparisonOperator_Gt_GtE',
     '& (group_weights[:, None] > 0))',
     '& (group_weights[:, None] >= 0))'):
        _EMPTY_GROUP,
    (_SSCA, 'ssca', 'NumberReplacer',
     '& (group_weights[:, None] > 0))',
     '& (group_weights[:, None] > -1))'):
        _EMPTY_GROUP,
    (_SSCA, 'consensus', 'NumberReplacer',
     '_sent(piece, threshold), 0.0)',
     '_sent(piece, threshold), 1.0)'):
        _INERT_FILL,
    (_SSCA, 'consensus', 'NumberReplacer',
     '_sent(piece, threshold), 0.0)',
     '_sent(piece, threshold), -1.0)'):
        _INERT_FILL,
    (_SSCA, 'consensus', 'ReplaceComparisonOperator_Gt_GtE',
     'denominator > 0,',
     'denominator >= 0,'):
        _ZERO_DENOMINATOR,
    (_SSCA, 'consensus', 'NumberReplacer',
     'denominator > 0,',
     'denominator > -1,'):
        _ZERO_DENOMINATOR,
    (_SSCA, 'consensus', 'ReplaceComparisonOperator_Gt_GtE',
     'numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)',
     'numerator / jnp.where(denominator >= 0, denominator, 1.0), 0.0)'):
        _ZERO_DENOMINATOR,
    (_SSCA, 'consensus', 'NumberReplacer',
     'numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)',
     'numerator / jnp.where(denominator > -1, denominator, 1.0), 0.0)'):
        _ZERO_DENOMINATOR,
    (_SSCA, 'consensus', 'NumberReplacer',
     'numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)',
     'numerator / jnp.where(denominator > 0, denominator, 2.0), 0.0)'):
        _ZERO_DENOMINATOR,
    (_SSCA, 'consensus', 'NumberReplacer',
     'numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)',
     'numerator / jnp.where(denominator > 0, denominator, 0.0), 0.0)'):
        _ZERO_DENOMINATOR,
    (_AGGREGATORS, 'ssca', 'ReplaceFalseWithTrue',
     "materialize: bool = False, normalize: str = 'members'",
     "materialize: bool = True, normalize: str = 'members'"):
        _SPEED_ONLY,
    (_AGGREGATORS, 'aggregate', 'NumberReplacer',
     'jnp.where(sending[:, None], message.rows, 0.0),',
     'jnp.where(sending[:, None], message.rows, 1.0),'):
        _INERT_FILL,
    (_AGGREGATORS, 'aggregate', 'NumberReplacer',
     'jnp.where(sending[:, None], message.rows, 0.0),',
     'jnp.where(sending[:, None], message.rows, -1.0),'):
        _INERT_FILL,
    (_AGGREGATORS, 'aggregate', 'NumberReplacer',
     'low = ordered[jnp.maximum(count - 1, 0) // 2]',
     'low = ordered[jnp.maximum(count - 1, 1) // 2]'):
        _EMPTY_MEDIAN,
    (_AGGREGATORS, 'aggregate', 'NumberReplacer',
     'low = ordered[jnp.maximum(count - 1, 0) // 2]',
     'low = ordered[jnp.maximum(count - 1, -1) // 2]'):
        _EMPTY_MEDIAN,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_Sub_Add',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() + 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Add',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size // BITS_ROW_GROUP_CLIENTS))',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size + BITS_ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Add',
     'return max(1, min(ROW_GROUPS_MAX, size // ROW_GROUP_CLIENTS))',
     'return max(1, min(ROW_GROUPS_MAX, size + ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_FloorDiv_Add',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 + max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Sub',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size // BITS_ROW_GROUP_CLIENTS))',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size - BITS_ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Sub',
     'return max(1, min(ROW_GROUPS_MAX, size // ROW_GROUP_CLIENTS))',
     'return max(1, min(ROW_GROUPS_MAX, size - ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_FloorDiv_Sub',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 - max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Mul',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size // BITS_ROW_GROUP_CLIENTS))',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size * BITS_ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Mul',
     'return max(1, min(ROW_GROUPS_MAX, size // ROW_GROUP_CLIENTS))',
     'return max(1, min(ROW_GROUPS_MAX, size * ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_FloorDiv_Mul',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 * max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Div',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size // BITS_ROW_GROUP_CLIENTS))',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size / BITS_ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceBinaryOperator_FloorDiv_Div',
     'return max(1, min(ROW_GROUPS_MAX, size // ROW_GROUP_CLIENTS))',
     'return max(1, min(ROW_GROUPS_MAX, size / ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, '_pack_signs', 'ReplaceBinaryOperator_Mod_Mul',
     'body = size - size % BITS_WIDTH',
     'body = size - size * BITS_WIDTH'):
        _PACK_BODY,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_Pow_Add',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2+20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_Pow_Sub',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2-20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_Pow_Mul',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2*20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_LShift_BitOr',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 | max(0, (2**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'ReplaceBinaryOperator_LShift_BitAnd',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 & max(0, (2**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceComparisonOperator_Eq_NotEq',
     "if dtype == 'bits':",
     "if dtype != 'bits':"):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_Eq_NotEq',
     "dtype = 'bits' if jax.default_backend() == 'cpu' else 'int8'",
     "dtype = 'bits' if jax.default_backend() != 'cpu' else 'int8'"):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_Eq_NotEq',
     "if dtype == 'bits':",
     "if dtype != 'bits':"):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'ReplaceComparisonOperator_NotEq_Eq',
     "if jax.default_backend() != 'cpu':",
     "if jax.default_backend() == 'cpu':"):
        _LAYOUT_EXACT,
    (_SSCA, '_symmetric', 'ReplaceComparisonOperator_LtE_Lt',
     'jnp.concatenate([pieces[i, j] if i <= j else pieces[j, i].T',
     'jnp.concatenate([pieces[i, j] if i < j else pieces[j, i].T'):
        'equivalent: a diagonal block pieces[i, i] is symmetric, so it equals its own transpose',
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_LtE_Lt',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)',
     'if size < BLOCKED_AGREEMENT_MAX_CLIENTS else 0)'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_LtE_Gt',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)',
     'if size > BLOCKED_AGREEMENT_MAX_CLIENTS else 0)'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_LtE_GtE',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)',
     'if size >= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_Gt_Lt',
     'if mesh is not None and mesh.shape.get(axis, 1) > 1:',
     'if mesh is not None and mesh.shape.get(axis, 1) < 1:'):
        _MESH_SPLIT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_Gt_LtE',
     'if mesh is not None and mesh.shape.get(axis, 1) > 1:',
     'if mesh is not None and mesh.shape.get(axis, 1) <= 1:'):
        _MESH_SPLIT,
    (_SSCA, '_row_cuts', 'ReplaceComparisonOperator_Gt_GtE',
     'return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]',
     'return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b >= a]'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_Gt_GtE',
     'if mesh is not None and mesh.shape.get(axis, 1) > 1:',
     'if mesh is not None and mesh.shape.get(axis, 1) >= 1:'):
        _MESH_SPLIT,
    (_SSCA, 'sign_agreement', 'ReplaceComparisonOperator_Is_IsNot',
     'if block is None:',
     'if block is not None:'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'AddNot',
     "if jax.default_backend() != 'cpu':",
     "if not jax.default_backend() != 'cpu':"):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'AddNot',
     "if dtype == 'bits':",
     "if not dtype == 'bits':"):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'AddNot',
     "dtype = 'bits' if jax.default_backend() == 'cpu' else 'int8'",
     "dtype = 'bits' if not jax.default_backend() == 'cpu' else 'int8'"):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'AddNot',
     'if block is None:',
     'if not block is None:'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'AddNot',
     "if dtype == 'bits':",
     "if not dtype == 'bits':"):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'AddNot',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)',
     'if not size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)'):
        _LAYOUT_EXACT,
    (_SSCA, 'products', 'AddNot',
     'if materialize:',
     'if not materialize:'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'ReplaceFalseWithTrue',
     'materialize: bool = False, block: int | None = None,',
     'materialize: bool = True, block: int | None = None,'):
        _SPEED_ONLY,
    (_SSCA, 'sign_agreement', 'ReplaceFalseWithTrue',
     'rows_sharded: bool = False) -> tuple[Array, Array]:',
     'rows_sharded: bool = True) -> tuple[Array, Array]:'):
        _SPEED_ONLY,
    (_SSCA, 'default_row_groups', 'NumberReplacer',
     'return 1',
     'return 2'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'NumberReplacer',
     'return max(1, min(BITS_ROW_GROUPS_MAX, size // BITS_ROW_GROUP_CLIENTS))',
     'return max( 2, min(BITS_ROW_GROUPS_MAX, size // BITS_ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, 'default_row_groups', 'NumberReplacer',
     'return max(1, min(ROW_GROUPS_MAX, size // ROW_GROUP_CLIENTS))',
     'return max( 2, min(ROW_GROUPS_MAX, size // ROW_GROUP_CLIENTS))'):
        _LAYOUT_EXACT,
    (_SSCA, '_row_cuts', 'NumberReplacer',
     'cuts = np.linspace(0, size, groups + 1).round().astype(int)',
     'cuts = np.linspace(0, size, groups + 2).round().astype(int)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 2 << max(0, (2**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 0 << max(0, (2**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max( 1, (2**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max( -1, (2**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, ( 3**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, ( 1**20 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2** 21 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2** 19 // max(size, 1)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 // max(size, 2)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 // max(size, 0)).bit_length() - 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 2)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)',
     'block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 0)'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'return min(32768, max(BITS_WIDTH, block))',
     'return min( 32769, max(BITS_WIDTH, block))'):
        _LAYOUT_EXACT,
    (_SSCA, 'bits_block', 'NumberReplacer',
     'return min(32768, max(BITS_WIDTH, block))',
     'return min( 32767, max(BITS_WIDTH, block))'):
        _LAYOUT_EXACT,
    (_SSCA, '_pack_signs', 'NumberReplacer',
     'if body == 0:',
     'if body == 1:'):
        _PACK_BODY,
    (_SSCA, '_pack_signs', 'NumberReplacer',
     'if body == 0:',
     'if body == -1:'):
        _PACK_BODY,
    (_SSCA, '_bit_counts', 'NumberReplacer',
     'both = both.sum(-1, dtype=jnp.int32)',
     'both = both.sum(- 2, dtype=jnp.int32)'):
        _FIELD_SUMS,
    (_SSCA, 'sign_agreement', 'NumberReplacer',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'NumberReplacer',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)',
     'if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else -1)'):
        _LAYOUT_EXACT,
    (_SSCA, 'sign_agreement', 'NumberReplacer',
     'if mesh is not None and mesh.shape.get(axis, 1) > 1:',
     'if mesh is not None and mesh.shape.get(axis, 2) > 1:'):
        _MESH_SPLIT,
    (_SSCA, 'sign_agreement', 'NumberReplacer',
     'if mesh is not None and mesh.shape.get(axis, 1) > 1:',
     'if mesh is not None and mesh.shape.get(axis, 0) > 1:'):
        _MESH_SPLIT,
    (_SSCA, 'sign_agreement', 'NumberReplacer',
     'if mesh is not None and mesh.shape.get(axis, 1) > 1:',
     'if mesh is not None and mesh.shape.get(axis, 1) > 2:'):
        _MESH_SPLIT,
    (_SSCA, 'sign_agreement', 'NumberReplacer',
     'if mesh is not None and mesh.shape.get(axis, 1) > 1:',
     'if mesh is not None and mesh.shape.get(axis, 1) > 0:'):
        _MESH_SPLIT,
    (_CHECKPOINTING, '__init__', 'ReplaceTrueWithFalse',
     'save_interval_steps=save_every, max_to_keep=max_to_keep, create=True,',
     'save_interval_steps=save_every, max_to_keep=max_to_keep, '
     'create=False,'):
        'equivalent: with orbax-checkpoint 0.12 the first save makes the '
        'folder whatever `create` says (test_the_directory_is_made_when_'
        'missing passes either way)',
    (_CHECKPOINTING, '__init__', 'ReplaceTrueWithFalse',
     'cleanup_tmp_directories=True,', 'cleanup_tmp_directories=False,'):
        'not worth a test: which left-over folders orbax takes for its '
        'temporary saves is orbax\'s own format; a test would pin it',
    (_CHECKPOINTING, '__init__', 'ReplaceFalseWithTrue',
     'enable_async_checkpointing=False)', 'enable_async_checkpointing=True)'):
        'not worth a test: asynchronous saving goes wrong only when the next '
        'round donates the arrays still being written, a race the CPU '
        'tests cannot provoke reliably',
    (_SAMPLING, 'cohort_batches', 'NumberReplacer',
     'm: jnp.broadcast_to(v[:, None], (v.shape[0], num_steps))',
     'm: jnp.broadcast_to(v[:, None], (v.shape[ -1], num_steps))'):
        'equivalent: the modality mask is one-dimensional, [C]',
    (_SAMPLING, '_slot_order', 'NumberReplacer',
     'return jnp.argsort(jnp.where(mask, noise, 2.0), axis=1).astype('
     'jnp.int32)',
     'return jnp.argsort(jnp.where(mask, noise, 3.0), axis=1).astype('
     'jnp.int32)'):
        'equivalent: the noise lies in [0, 1), so any key >= 1 sorts the '
        'padding slots last, in order',
    (_SAMPLING, '_slot_order', 'NumberReplacer',
     'return jnp.argsort(jnp.where(mask, noise, 2.0), axis=1).astype('
     'jnp.int32)',
     'return jnp.argsort(jnp.where(mask, noise, 1.0), axis=1).astype('
     'jnp.int32)'):
        'equivalent: the noise lies in [0, 1), so any key >= 1 sorts the '
        'padding slots last, in order',
    (_SAMPLING, 'draw_cohort', 'NumberReplacer',
     'order, position[None, :] % jnp.maximum(counts, 1)[:, None], axis=1)',
     'order, position[None, :] % jnp.maximum(counts, 0)[:, None], axis=1)'):
        'equivalent: it differs only for a client with no examples, whose '
        'example mask is all False, so which slots it reads does not matter',
    (_SAMPLING, 'step', 'NumberReplacer',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[0] - 1)',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[ 1] - 1)'):
        _PADDING_ROW,
    (_SAMPLING, 'step', 'NumberReplacer',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[0] - 1)',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[ -1] - 1)'):
        _PADDING_ROW,
    (_SAMPLING, 'step', 'NumberReplacer',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[0] - 1)',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[0] - 0)'):
        _PADDING_ROW,
    (_SAMPLING, 'step', 'ReplaceBinaryOperator_Sub_Add',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[0] - 1)',
     'row = jnp.minimum(self.client_id, self.data.labels.shape[0] + 1)'):
        _PADDING_ROW,
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'size = x.shape[0]', 'size = x.shape[ -1]'):
        'equivalent: x is one-dimensional, [P]',
    (_COMPRESSION, 'magnitude_order_statistics', 'NumberReplacer',
     'bits = jnp.pad(bits, (0, -bits.shape[0] % blockwise.COUNT_WIDTH),',
     'bits = jnp.pad(bits, (0, -bits.shape[ -1] % blockwise.COUNT_WIDTH),'):
        'equivalent: the magnitudes are one-dimensional, [n]',
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'if static and rho >= 1.0:', 'if static and rho >= 2.0:'):
        'equivalent: at rho = 1, k = P, so the search ends in the '
        '"at most k non-zero entries" case and returns 0 as the shortcut does',
    (_COMPRESSION, 'magnitude_threshold', 'NumberReplacer',
     'threshold = jnp.where(rho >= 1.0, 0.0, threshold)',
     'threshold = jnp.where(rho >= 2.0, 0.0, threshold)'):
        'equivalent: at rho = 1, k = P, so the threshold is already 0 (at '
        'most k non-zero entries)',
    (_COMPRESSION, 'magnitude_threshold', 'ReplaceComparisonOperator_GtE_Gt',
     'threshold = jnp.where(rho >= 1.0, 0.0, threshold)',
     'threshold = jnp.where(rho > 1.0, 0.0, threshold)'):
        'equivalent: at rho = 1, k = P, so the threshold is already 0 (at '
        'most k non-zero entries)',
    (_CLIENT, 'loss_fn', 'NumberReplacer',
     'jax.nn.softmax(z), label[:, None], axis=1)[:, 0], 0.0))',
     'jax.nn.softmax(z), label[:, None], axis=1)[:, 1], 0.0))'):
        _CLAMPED,
    (_CLIENT, 'step', 'ReplaceBinaryOperator_Add_Sub',
     'new = new + jnp.std(leaf) * jax.random.normal(leaf_key, leaf.shape)',
     'new = new - jnp.std(leaf) * jax.random.normal(leaf_key, leaf.shape)'):
        'not worth a test: the Gaussian noise is symmetric, so the mutant '
        'draws from the same distribution; only a golden number taken from '
        'the code itself for one key could tell',
    (_CLIENT, 'loss_fn', 'NumberReplacer',
     'q_y = jnp.take_along_axis(q, label[:, None], axis=1)[:, 0]',
     'q_y = jnp.take_along_axis(q, label[:, None], axis=1)[:, -1]'):
        _LAST_IS_FIRST,
}


def reason(module: str, function: str, operator: str, old: str,
           new: str) -> str | None:
  """The recorded reason for a survivor, or None."""
  return REASONS.get((module, function, operator.removeprefix('core/'), old,
                      new))
