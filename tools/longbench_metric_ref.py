#!/usr/bin/env python3
"""Writes tests/data/longbench_metric_ref.jsonl: random answer pairs (ASCII, punctuation, articles,
non-ASCII letters, Unicode spaces and marks) with the scores LongBench's eval.py gives them, for
tests/test_metrics.c to compare against bit for bit.

Needs pip `rouge==1.0.1` (the package LongBench uses). normalize_answer / f1 are LongBench's
metrics.py definitions (KV-ALGORITHMS.md 5.5). The pairs are short, so ROUGE's recursion limit
(tested separately) plays no part.
usage: python3 tools/longbench_metric_ref.py > tests/data/longbench_metric_ref.jsonl
"""
import json
import random
import re
import string
from collections import Counter

from rouge import Rouge


def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def f1_score(prediction, ground_truth):
    common = Counter(prediction) & Counter(ground_truth)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction)
    recall = 1.0 * num_same / len(ground_truth)
    return (2 * precision * recall) / (precision + recall)


def qa_f1_score(prediction, ground_truth):
    return f1_score(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def rouge_score(prediction, ground_truth):
    rouge = Rouge()
    try:
        scores = rouge.get_scores([prediction], [ground_truth], avg=True)
    except:  # noqa: E722 (as eval.py: any exception scores 0)
        return 0.0
    return scores["rouge-l"]["f"]


PIECES = ["the", "a", "an", "The", "A", "AN", "cat", "dog", "Cat", "x", "and", "then", ".", ",", "'", "-", "_", " ",
          "  ", "\t", "\n", "\u00e9", "\u00c9", "\u2019", "\u2014", "\u00a0", "\u0301", "\u00df", "\u0130", "\u03a9",
          "\u0414", "1", "42", "\u2026", "\u00bd", "\u00b2", "\u4e2d", "\u6587", "\U0001F600", "a.b", "..", "the.",
          "\u0100", "\u0138", "\u0178"]


def main():
    rnd = random.Random(20261123)
    pairs = []
    for _ in range(400):
        pairs.append(tuple("".join(rnd.choice(PIECES) + rnd.choice(["", " ", " ", "."])
                                   for _ in range(rnd.randint(0, 12))) for _ in range(2)))
    for (p, g), (f1, rl) in zip(pairs, [(qa_f1_score(p, g), rouge_score(p, g)) for p, g in pairs]):
        print(json.dumps({"pred": p, "gold": g, "norm": normalize_answer(p), "qa_f1": float(f1), "rouge": rl}))


if __name__ == "__main__":
    main()
