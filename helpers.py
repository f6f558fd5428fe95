"""The notebooks' one import surface: exactly the names the chapters (and the README's examples) use, re-exported from
the `tmkd` package. Tests and benchmarks import what else they need from the modules themselves.

Yang et al., "Model Compression with Two-stage Multi-teacher Knowledge Distillation for Web Question Answering
System", WSDM 2020 (arXiv 1910.08381). The package's layers and what each module does: docs/code.md.

Nothing runs at import time except constants.
"""
from tmkd.chain.estimate import estimate
from tmkd.chain.plan import plan_table, stage1_sentence
from tmkd.core.files import read_json
from tmkd.inputs.data import peek, task_data
from tmkd.model.method import (carry_over_stage1, golden_loss, head_probabilities, mse_soft_loss, pool, tmkd_loss,
                               TMKDStudent)
from tmkd.model.methods import (ALL_COMPARISONS, arms, ONE_STAGE_COMPARISONS, REGISTRY, table_rows,
                                TWO_STAGE_COMPARISONS)
from tmkd.reporting.answers import (best_teacher_sentence, conclusion, control_budget_sentence, control_sentence,
                                    kd_takeaway, matched_takeaway, seeds_sentence, size_lines, stage1_loss_sentence,
                                    stage1_size_sentence, stage1_students_sentence, stage1_takeaway, stage2_sentence,
                                    weak_teacher_sentence)
from tmkd.reporting.figures import plot_curves, plot_logits, plot_methods, plot_speed, plot_stage1_size, plot_sweep
from tmkd.reporting.report import (chapter_intervals, collapsed, comparison_table, int8_table, majority_classes,
                                   plot_convergence, pooling_table, readable, relative_table, save_figure, save_table,
                                   seed_table, speed_table, stage1_size_table, stage_curves, sweep_table,
                                   teacher_table, training_runs)
from tmkd.reporting.speed import int8_accuracy, measure_speed, speedup_sentence
from tmkd.reporting.takeaways import (convergence_sentence, int8_sentence, majority_sentences, pooling_sentence,
                                      result_sentences, size_sentence, sweep_sentence, sweeps_conclusion,
                                      verdict_summary)
from tmkd.reporting.why import heads_sentence, label_only_sentence, seen_sentence, stage1_why
from tmkd.stats.evidence import compare_methods, interval_table, plot_intervals
from tmkd.training.environment import departures, profile_note
from tmkd.training.experiments import (alpha_sweep, chapter_arms, configured_metrics, control_curves,
                                       convergence_curves, head_accuracies, pooling_check, run_arms, run_stage1,
                                       run_sweeps, stage1_overlap, stage1_size_curve, start_chapter)
from tmkd.training.logit_cache import (align_labels, cache_all_logits, logits_path, with_label_logits,
                                       with_teacher_logits)
from tmkd.training.rundir import read_metrics
from tmkd.training.specs import stage2_tasks
from tmkd.training.students import first_batch, fresh_student, student_from_stage1
from tmkd.training.teacher_selection import (best_teacher, evaluate_teachers, teacher_quality,
                                             teachers_seen_and_unseen)
from tmkd.training.teachers import teacher_names, train_teachers

__all__ = sorted(name for name in dir() if not name.startswith("_"))
