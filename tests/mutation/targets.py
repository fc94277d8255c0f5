"""What the mutation run mutates, and which tests judge each module.

A target is one module of the round's core, the functions in it whose
lines are mutated (None: the whole module), and the pytest node ids that
must kill its mutants: the tests of that module's behaviour, kept small
enough that a surviving mutant (which runs all of them) costs under a
minute on a 2-core CPU.

The operators are cosmic-ray's, less those that make mostly type errors or
duplicates of kept ones (replacing arithmetic by shifts, powers, bit
operations; ordering by identity) and those that are not single-line
slips (variable replacement and insertion, removing decorators or
exception handlers). What stays: + - * /, & |, every ordering flip and
boundary (< <= > >=), == !=, is / is not, not, and / or, True / False,
unary minus, ~, numbers +-1, and zero-iteration loops.
"""

from typing import NamedTuple


class Target(NamedTuple):
  module: str
  functions: tuple[str, ...] | None
  tests: tuple[str, ...]


_ROUND_TESTS = (
    'tests/test_fedavg.py',
    'tests/test_fedmchain.py::test_fedmchain_round_compiles_once_and_is_'
    'deterministic',
    'tests/test_fedmchain.py::test_upload_bytes_and_error_feedback',
    'tests/test_fedmchain.py::test_clients_lacking_a_modality_do_not_hold_'
    'its_encoder',
    'tests/test_fedmchain.py::test_kept_fraction_and_bytes_count_the_holders_'
    'of_each_block',
    'tests/test_fedmchain.py::test_error_feedback_across_two_rounds_of_the_'
    'composed_round',
    'tests/test_fedmchain.py::test_padding_client_changes_nothing_in_fedmchain',
    'tests/test_parts.py',
    'tests/test_reliability.py::test_nonfinite_updates_are_excluded',
    'tests/test_launcher.py::test_metrics_contract',
    'tests/test_scale.py::test_a_round_gathering_per_client_is_bitwise_the_'
    'gathered_cohorts',
    'tests/test_scale.py::test_chunked_rounds_are_bitwise_the_unchunked_round',
    'tests/test_scale.py::test_a_custom_update_gets_batches_of_s_rows_unless_'
    'it_steps_them',
    'tests/test_scale.py::test_a_round_never_holds_the_whole_cohorts_batches',
    'tests/test_scale.py::test_leaves_outside_the_blocks_are_checked_for_'
    'nonfinite_values',
    'tests/test_scale.py::test_aggregate_takes_a_deltas_tree_as_a_loop_over_'
    'clients_gives_it',
)

TARGETS = {
    'uploads': Target(
        'fedmchain_jax/uploads.py', None,
        ('tests/test_parts.py::test_error_feedback_sends_delta_plus_residual_'
         'two_rounds_by_hand',
         'tests/test_parts.py::test_uploads_count_nothing_for_clients_that_do_'
         'not_hold_the_block',
         'tests/test_ssca.py::test_ties_at_the_threshold_are_all_sent_and_'
         'counted',
         'tests/test_ssca.py::test_threshold_keeps_about_the_top_fraction',
         'tests/test_ssca.py::test_fraction_one_is_the_identity_and_zeros_are_'
         'never_kept',
         'tests/test_ssca.py::test_residuals_stored_row_by_row_are_the_'
         'scatters',
         'tests/test_ssca.py::test_traced_fraction_matches_the_static_one',
         'tests/test_parts.py::test_bytes_and_metrics_of_dense_and_sparse_'
         'uploads_on_the_mean',
         'tests/test_fedmchain.py::test_kept_fraction_and_bytes_count_the_'
         'holders_of_each_block',
         'tests/test_fedmchain.py::test_error_feedback_across_two_rounds_of_'
         'the_composed_round',
         'tests/test_fedmchain.py::test_error_feedback_conserves_the_update',
         'tests/test_fedmchain.py::test_upload_bytes_and_error_feedback')),
    'compression': Target(
        'fedmchain_jax/compression.py', None,
        ('tests/test_ssca.py::test_threshold_is_the_documented_search_step_'
         'by_step',
         'tests/test_ssca.py::test_ties_at_the_threshold_are_all_sent_and_'
         'counted',
         'tests/test_ssca.py::test_threshold_keeps_about_the_top_fraction',
         'tests/test_ssca.py::test_magnitude_at_least_is_the_absolute_'
         'comparison',
         'tests/test_ssca.py::test_count_at_least_counts_zeros_only_when_'
         'asked_to',
         'tests/test_ssca.py::test_keep_mask_sends_every_nonzero_entry_at_'
         'the_threshold_either_sign',
         'tests/test_ssca.py::test_order_statistics_are_the_sorted_entries_'
         'bit_for_bit',
         'tests/test_ssca.py::test_fraction_one_is_the_identity_and_zeros_are_'
         'never_kept',
         'tests/test_ssca.py::test_message_bytes_takes_the_cheaper_encoding',
         'tests/test_ssca.py::test_traced_fraction_matches_the_static_one',
         'tests/test_ssca.py::test_sample_positions_cover_the_block_evenly',
         'tests/test_ssca.py::test_thresholds_keep_the_fraction_on_'
         'structured_blocks',
         'tests/test_ssca.py::test_a_vector_with_at_most_k_nonzeros_keeps_'
         'them_all',
         'tests/test_ssca.py::test_blockwise_reduce_counts_exactly')),
    'aggregators': Target(
        'fedmchain_jax/aggregators.py', None,
        ('tests/test_parts.py',
         'tests/test_ssca.py::test_dense_rows_with_thresholds_are_their_'
         'sparse_updates',
         'tests/test_fedmchain.py::test_clients_lacking_a_modality_do_not_'
         'hold_its_encoder')),
    'ssca': Target(
        'fedmchain_jax/ssca.py',
        ('_sent', '_finish', 'connected_components', 'ssca', 'SSCAResult'),
        ('tests/test_ssca.py::test_ssca_matches_numpy',
         'tests/test_ssca.py::test_agreement_over_one_shared_entry_and_over_'
         'none',
         'tests/test_ssca.py::test_a_coordinate_whose_group_mass_cancels_'
         'elects_no_sign',
         'tests/test_ssca.py::test_groups_of_fractional_weight_count_as_any_'
         'other',
         'tests/test_ssca.py::test_two_opposed_clusters_form_two_groups',
         'tests/test_ssca.py::test_elected_sign_and_disjoint_mean_by_hand',
         'tests/test_ssca.py::test_connected_components_of_a_known_graph',
         'tests/test_ssca.py::test_dense_rows_with_thresholds_are_their_'
         'sparse_updates',
         'tests/test_ssca.py::test_rows_outside_the_groups_cannot_poison_the_'
         'update',
         'tests/test_parts.py::test_ssca_normalized_by_group_members_on_three_'
         'toy_clients',
         'tests/test_parts.py::test_aggregation_metrics_of_ssca_on_three_toy_'
         'clients')),
    'agreement': Target(
        'fedmchain_jax/ssca.py',
        ('default_row_groups', '_row_cuts', 'bits_block', '_pack_signs',
         '_bit_counts', '_symmetric', '_pair', 'sign_agreement'),
        ('tests/test_ssca.py::test_every_agreement_form_is_exact',
         'tests/test_ssca.py::test_default_agreement_layouts_are_exact_on_'
         'every_backend',
         'tests/test_ssca.py::test_dense_rows_with_thresholds_are_their_'
         'sparse_updates',
         'tests/test_ssca.py::test_packed_signs_are_the_bits_of_the_support_'
         'and_the_negatives',
         'tests/test_ssca.py::test_blocks_over_p_give_the_one_block_result',
         'tests/test_ssca.py::test_ssca_matches_numpy')),
    'rounds': Target('fedmchain_jax/algorithms/rounds.py', None, _ROUND_TESTS),
    'client': Target(
        'fedmchain_jax/client.py',
        ('step_batch', 'num_steps_of', 'scan_steps', 'local_train',
         'phase_loss', '_phase', 'chain', 'proximal', 'joint',
         '_ogm_coefficients', '_ogm_loss', 'ogm_ge'),
        ('tests/test_fedmchain.py::test_boost_regularizer_golden_numbers',
         'tests/test_fedmchain.py::test_reweight_regularizer_golden_numbers',
         'tests/test_fedmchain.py::test_regularizer_is_dropped_for_a_client_'
         'without_the_modalities_it_reads',
         'tests/test_fedmchain.py::test_reweight_is_dropped_for_a_single_'
         'modality',
         'tests/test_fedmchain.py::test_each_phase_moves_only_its_modality',
         'tests/test_fedmchain.py::test_missing_modality_leaves_its_blocks_'
         'unchanged',
         'tests/test_fedmchain.py::test_chain_order_changes_the_result',
         'tests/test_fedmchain.py::test_chain_metrics_average_the_phases_a_'
         'client_ran',
         'tests/test_fedmchain.py::test_ogm_ge_damps_the_dominant_modality',
         'tests/test_fedmchain.py::test_ogm_ge_ratio_is_to_the_mean_of_the_'
         'other_present_modalities',
         'tests/test_fedmchain.py::test_ogm_ge_adds_generalization_noise_by_'
         'default',
         'tests/test_fedmchain.py::test_an_apply_fn_of_the_wrong_arity_is_'
         'refused_when_built',
         'tests/test_fedmchain.py::test_a_chain_of_bad_orders_or_an_unknown_'
         'regularizer_is_refused',
         'tests/test_fedmchain.py::test_ogm_ge_confidence_sums_the_real_'
         'examples_only',
         'tests/test_fedmchain.py::test_phase_metrics_are_means_over_the_'
         'phase_steps',
         'tests/test_fedmchain.py::test_ogm_ge_scales_the_dominant_encoders_'
         'gradient_and_adds_its_noise',
         'tests/test_fedavg.py')),
    'models': Target(
        'fedmchain_jax/models.py', None,
        ('tests/test_models.py',
         'tests/test_fedmchain.py::test_kept_fraction_and_bytes_count_the_'
         'holders_of_each_block')),
    'sampling': Target(
        'fedmchain_jax/data/federated.py',
        ('client_batches', 'cohort_batches', '_slot_order', 'draw_cohort',
         'DrawnBatches', 'gather_batches', 'gather_cohort', 'sample_cohort'),
        ('tests/test_data.py',)),
    'checkpointing': Target(
        'fedmchain_jax/checkpointing.py', None,
        ('tests/test_checkpointing.py',
         'tests/test_launcher.py::test_rerun_resumes_and_matches_an_'
         'uninterrupted_run',
         'tests/test_launcher.py::test_resume_restores_a_stateful_server_'
         'optimizer',
         'tests/test_launcher.py::test_lost_checkpoint_rolls_metrics_back',
         'tests/test_reliability.py::test_corrupt_latest_checkpoint_falls_'
         'back',
         'tests/test_reliability.py::test_partial_metrics_line_is_dropped')),
    'server': Target(
        'fedmchain_jax/algorithms/base.py',
        ('round_keys', 'client_keys', 'server_step', 'init_state'),
        ('tests/test_fedavg.py',
         'tests/test_fedmchain.py::test_error_feedback_across_two_rounds_of_'
         'the_composed_round',
         'tests/test_launcher.py::test_resume_restores_a_stateful_server_'
         'optimizer')),
}

EXCLUDED_OPERATORS = (
    r'core/ReplaceBinaryOperator_\w+_(FloorDiv|Mod|Pow|RShift|LShift|BitXor)$',
    r'core/ReplaceBinaryOperator_(Add|Sub|Mul|Div|FloorDiv|Mod|Pow)_'
    r'(BitOr|BitAnd)$',
    r'core/ReplaceBinaryOperator_(BitOr|BitAnd|RShift|LShift|BitXor)_'
    r'(Add|Sub|Mul|Div)$',
    r'core/ReplaceBinaryOperator_(Add_Mul|Add_Div|Sub_Mul|Sub_Div|Mul_Add|'
    r'Mul_Sub|Div_Add|Div_Sub)$',
    r'core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$',
    r'core/ReplaceComparisonOperator_(Is|IsNot)_(Eq|NotEq|Lt|LtE|Gt|GtE)$',
    r'core/ReplaceComparisonOperator_(Eq|NotEq)_(Lt|LtE|Gt|GtE)$',
    r'core/ReplaceComparisonOperator_(Lt|LtE|Gt|GtE)_(Eq|NotEq)$',
    r'core/ReplaceUnaryOperator_(UAdd|USub|Invert)_(UAdd|Not|Invert)$',
    r'core/ReplaceUnaryOperator_UAdd_',
    r'core/VariableReplacer$',
    r'core/VariableInserter$',
    r'core/RemoveDecorator$',
    r'core/ExceptionReplacer$',
    r'core/ReplaceBreakWithContinue$',
    r'core/ReplaceContinueWithBreak$',
)
