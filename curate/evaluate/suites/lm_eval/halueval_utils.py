"""Documents of the shipped `halueval_qa` lm-eval task (halueval_qa.yaml beside this file): each HaluEval QA
row becomes two judgements, its right answer (target "No": not hallucinated) and its hallucinated answer
(target "Yes"). Loaded by the harness through `!function`; imports nothing from curate.
Test: tests/test_evaluate_lmeval.py."""


def qa_judgements(dataset):
    def expand(batch):
        out = {"knowledge": [], "question": [], "answer": [], "label": []}
        for k, q, right, wrong in zip(batch["knowledge"], batch["question"], batch["right_answer"], batch["hallucinated_answer"]):
            for answer, label in ((right, 1), (wrong, 0)):  # label indexes doc_to_choice ["Yes", "No"]
                out["knowledge"].append(k)
                out["question"].append(q)
                out["answer"].append(answer)
                out["label"].append(label)
        return out

    return dataset.map(expand, batched=True, remove_columns=dataset.column_names)
