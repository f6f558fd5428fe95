"""The notebooks' one import surface: exactly the names the chapters (and the README's examples) use, re-exported from
the `tmkd` package. Tests and benchmarks import what else they need from the modules themselves.

Yang et al., "Model Compression with Two-stage Multi-teacher Knowledge Distillation for Web Question Answering
System", WSDM 2020 (arXiv 1910.08381). The package in layers, each importing only from the layers above it here:

  tmkd/paper.py              the paper's published numbers and settings
  tmkd/numbers.py            how every accuracy is written (one rounding path for tables, sentences, figures)
  tmkd/files.py              atomic files (json, npz, npy) and content hashes
  tmkd/progress.py           the live run's progress lines: to the chapter's progress log under the chain
  tmkd/colab.py              Colab's paths, and the set-up its first cell runs
  tmkd/config.py             Config (every knob, documented), profiles, tasks, where a run departs from the paper
  tmkd/method.py             the paper in code: losses, Eq. 6, the multi-header student, what each KD method is
  tmkd/parallel.py           several processes (GPUs) for the heavy steps
  tmkd/lock.py               one writer per run directory
  tmkd/base_model.py         the teachers' pre-trained base and its tokenizer
  tmkd/corpus.py             a stage-1 corpus from a file of any size: read, tokenized and memory-mapped in shards
  tmkd/identity.py           which settings identify a step
  tmkd/rundir.py             the run's identity, claiming a step, FORCE once per run, metrics.csv
  tmkd/data.py               GLUE-layout folders, the Hub, generated smoke data; tokenized once
  tmkd/environment.py        a chapter's start: configuration, lock, versions, the device
  tmkd/trainer.py            Trainer glue: arguments, resume, final model + done marker, prediction
  tmkd/plan.py               the pairs of every split and step, the models, the estimate's arithmetic; checked first
  tmkd/estimate.py           what a profile will cost: time from a measured warm-up, disk
  tmkd/teachers.py           fine-tuning the N teachers per task
  tmkd/logit_cache.py        cached teacher logits, aligned by example and label; a corpus file scored by shards
  tmkd/teacher_selection.py  teachers on dev; best and weak teachers on the held-out select slice of train
  tmkd/students.py           one student step: spec, identity, build, train, score; the student on one batch
  tmkd/pool.py               students side by side on a CPU: each in its own process, with its share of the cores
  tmkd/experiments.py        what the chapters run: KD methods, sweeps, the two stages
  tmkd/intervals.py          a comparison's interval (t on the seed level, normal on the dev sample's), Holm
  tmkd/evidence.py           the paper's headline family and the rest, verdict words, the comparisons, their table
  tmkd/speed.py              examples/s and latency; the int8 student
  tmkd/report.py             tables from metrics.csv; where tables and figures are saved
  tmkd/figures.py            figures from metrics.csv, speed.csv and the training logs
  tmkd/takeaways.py          what this run shows, in generated sentences
  tmkd/answers.py            each chapter's answer to its question, first and in plain words
  tmkd/publish.py            results/reference and the README's table (run_chain --publish; not for the chapters)

Nothing runs at import time except constants.
"""
from tmkd.answers import (best_teacher_sentence, conclusion, control_budget_sentence, control_sentence, kd_takeaway,
                          matched_takeaway, seeds_sentence, size_lines, stage1_loss_sentence, stage1_size_sentence,
                          stage1_students_sentence, stage1_takeaway, stage2_sentence, weak_teacher_sentence)
from tmkd.data import peek, task_data
from tmkd.environment import departures, profile_note, start_chapter
from tmkd.estimate import estimate
from tmkd.evidence import (ALL_COMPARISONS, compare_methods, interval_table, ONE_STAGE_COMPARISONS, plot_intervals,
                           TWO_STAGE_COMPARISONS)
from tmkd.experiments import (alpha_sweep, configured_metrics, configured_variants, control_curves, convergence_curves,
                              pooling_check, run_arms, run_stage1, run_sweeps,
                              stage1_overlap, stage1_size_curve, stage2_tasks)
from tmkd.figures import plot_curves, plot_logits, plot_methods, plot_speed, plot_stage1_size, plot_sweep
from tmkd.files import read_json
from tmkd.logit_cache import align_labels, cache_all_logits, logits_path, with_teacher_logits
from tmkd.method import golden_loss, head_probabilities, mse_soft_loss, pool, tmkd_loss, TMKDStudent
from tmkd.plan import plan_table, stage1_sentence
from tmkd.report import (collapsed, comparison_table, int8_table, majority_classes, plot_convergence, readable,
                         relative_table, save_figure, save_table, seed_table, speed_table, stage1_size_table,
                         stage_curves, sweep_table, teacher_table, training_runs)
from tmkd.rundir import read_metrics
from tmkd.speed import int8_accuracy, measure_speed, speedup_sentence
from tmkd.students import first_batch, fresh_student
from tmkd.takeaways import (convergence_sentence, int8_sentence, interval_sentences, majority_sentences,
                            result_sentences, size_sentence, sweep_sentence)
from tmkd.teacher_selection import best_teacher, evaluate_teachers, teacher_quality
from tmkd.teachers import teacher_names, train_teachers

__all__ = sorted(name for name in dir() if not name.startswith("_"))
