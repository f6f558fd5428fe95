"""The notebooks' one import surface: explicit names, re-exported from the modules of the `tmkd` package.

Yang et al., "Model Compression with Two-stage Multi-teacher Knowledge Distillation for Web Question Answering
System", WSDM 2020 (arXiv 1910.08381). Where each part lives:

  tmkd/method.py       the paper in code: losses, Eq. 6, the multi-header student, what each KD method is
  tmkd/config.py       Config (every knob, documented), profiles, tasks, which settings identify a step
  tmkd/data.py         GLUE-layout folders, the Hub, generated smoke data; tokenized once
  tmkd/base_model.py   the teachers' pre-trained base and its tokenizer
  tmkd/rundir.py       atomic files, run.json, claiming a step, FORCE once per run, metrics.csv
  tmkd/trainer.py      Trainer glue: arguments, resume, final model + done marker, prediction
  tmkd/teachers.py     fine-tuning the N teachers per task
  tmkd/logit_cache.py  cached teacher logits, aligned by example and label; teachers reported on dev, compared on a held-out slice of train;
                       a stage-1 corpus file scored shard by shard
  tmkd/corpus.py       a stage-1 corpus from a file of any size: read, tokenized and memory-mapped in shards
  tmkd/parallel.py     several processes (GPUs) for the heavy steps: nproc workers, or a torchrun / accelerate launch
  tmkd/students.py     one student step: spec, identity, build, train, score
  tmkd/experiments.py  what the chapters run: KD methods, sweeps, the two stages
  tmkd/estimate.py     what a profile will cost: time from a measured warm-up, disk
  tmkd/walkthrough.py  the multi-header student on one real batch (chapter 03)
  tmkd/evidence.py     paired bootstrap intervals of accuracy differences; supported / refuted / within noise
  tmkd/speed.py        examples/s and latency; the int8 student
  tmkd/report.py       tables and figures from metrics.csv
  tmkd/publish.py      results/reference and the README table (run_chain --publish; not for the chapters)
  tmkd/lock.py         one writer per run directory
  tmkd/environment.py  a chapter's start: configuration, lock, versions, device, quieter logs

Nothing runs at import time except constants.
"""
from tmkd.base_model import base_depth, base_model_path, build_smoke_model, load_tokenizer, smoke_vocabulary
from tmkd.config import (MINILM_MODEL, PAPER_VALUES, PROFILES, SMOKE_MODEL, TASKS, Config, TMKDError, deviations,
                         identity, make_config, parse_overrides, settings_excluded)
from tmkd.corpus import (TokenShards, check_corpus_file, corpus_columns, corpus_name, corpus_tokens, count_pairs,
                         read_pairs)
from tmkd.data import (TRAIN_PARTS, dev_splits, frame_to_labelled, generate_split, peek, raw_split, read_local_split,
                       split_dataset, stage1_corpus, take_subset, task_data, train_parts)
from tmkd.estimate import estimate
from tmkd.environment import departures, describe_environment, quiet, start_chapter
from tmkd.evidence import claim_verdict, paired_bootstrap, sentence, verdict
from tmkd.experiments import (ONE_STAGE_COMPARISONS, TWO_STAGE_COMPARISONS, VARIANTS, alpha_sweep, base_spec,
                              compare_methods, log_history, matched_spec, method_correct, method_specs, one_vs_many,
                              pooling_check, run_method, run_stage1, run_stage2, run_sweep, stage1_overlap, stage1_spec, strong_variants,
                              stage2_spec, stage2_tasks, sweep_values)
from tmkd.logit_cache import (corpus_logits, corpus_with_logits, score_corpus, align_examples, align_labels, best_teacher, cache_all_logits, evaluate_teachers,
                              logits_path, select_accuracies, stacked_teacher_logits, teacher_logits, teacher_quality,
                              weak_teachers, with_teacher_logits)
from tmkd.method import (METHODS, ONE_STAGE_METHODS, SOFT_LOSSES, TWO_STAGE_METHODS, TMKDConfig, TMKDStudent,
                         accuracy, combine_students, golden_loss, head_probabilities, kl_soft_loss, make_head,
                         method_students, mse_soft_loss, pool, soft_heads, teacher_ensemble, tmkd_loss,
                         TeacherClassifier)
from tmkd.report import (METHOD_LABELS, METHOD_ORDER, PUBLISHED, collapsed, comparison_table, interval_sentences,
                         method_table, per_seed, plot_curves, plot_intervals, plot_methods, plot_speed, plot_sweep,
                         relative_table, result_sentence, result_sentences, save_figure, save_table, seed_table,
                         stage_curves, sweep_sentence, sweep_table, training_runs)
from tmkd.parallel import launch, world_size
from tmkd.rundir import (METRIC_KEY, artifacts_intact, check_run_dir, claim_step, step_finished, file_sha256, fingerprint, load_npz,
                         read_json, read_metrics,
                         record_metrics, write_json_atomic)
from tmkd.speed import measure_speed
from tmkd.students import (StudentSpec, build_student, check_vocabulary, student_dir, student_from_stage1, student_init,
                           student_predictions, student_rows, student_train_data, train_student)
from tmkd.teachers import teacher_dir, teacher_name, teacher_names, train_teacher, train_teachers
from tmkd.trainer import last_good_checkpoint
from tmkd.walkthrough import first_batch, fresh_student

__all__ = [name for name in dir() if not name.startswith("_")]
