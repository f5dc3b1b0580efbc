"""The facts a model file keeps beside the weights (its ``extra`` member), built in one place
for the train command and the app."""
from __future__ import annotations


def run_facts(trainer, dataset: str, class_names, test_size: int | None = None,
              test_loss: float | None = None, test_accuracy: float | None = None) -> dict:
    """{"dataset", "train_size", "test_size", "augment", "nesterov", "weight_decay",
    "label_smoothing",
    "class_names", "test_loss", "test_accuracy"} of ``trainer``'s run on ``dataset`` (a name
    or a folder). The test figures default to the trainer's test split and its last epoch
    report."""
    report = trainer.last_epoch_report
    if test_size is None:
        test_size = 0 if trainer.x_test is None else len(trainer.x_test)
        if report is not None:
            test_loss, test_accuracy = report.test_loss, report.test_accuracy
    return {"dataset": dataset, "train_size": len(trainer.x_train), "test_size": test_size,
            "augment": list(trainer.augment), "nesterov": trainer.optimizer.nesterov,
            "weight_decay": trainer.optimizer.weight_decay,
            "label_smoothing": trainer.label_smoothing,
            "class_names": [str(n) for n in class_names],
            "test_loss": test_loss, "test_accuracy": test_accuracy}
