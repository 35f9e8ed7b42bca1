"""The learning loop on the labelling screen: the retrain key (`t`) embeds the images without a
vector and trains on the accepted labels in a thread worker (one at a time; the person keeps
labelling meanwhile), then refreshes the proposals on screen; the status bar shows the trained
model's cross-validated accuracy. The work itself is `annotator.learn.loop`, reached through the
backend; a failure (no learn extra, no weights, too few labels) reaches the screen's one
worker-error handler, which shows its one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work

from annotator.tui.messages import Learning, Retrained

if TYPE_CHECKING:
    from annotator.store.queue import DatasetInfo, ImageView
    from annotator.tui.backend import Backend


class LearningMixin:
    """Retraining and the model's accuracy, for the labelling screen."""

    accuracy: float | None = None  # the newest trained model's cross-validated accuracy
    learning: str = ""  # what retraining is doing now ("" when it is not running)

    if TYPE_CHECKING:
        backend: Backend
        info: DatasetInfo
        view: ImageView | None
        draft: Any

        @property
        def moving(self) -> bool: ...

        def notify(self, message: str, **kwargs: Any) -> None: ...
        def post_message(self, message: Any) -> bool: ...
        def refresh_panels(self) -> None: ...
        def go(self, how: str, arg: Any = None) -> None: ...
        def schedule_counts(self) -> None: ...

    def action_retrain(self) -> None:
        if self.learning:
            self.notify(f"already retraining ({self.learning})", timeout=3)
            return
        self.learning = "retraining…"
        self.refresh_panels()
        self.retrain(self.info.id)

    @work(thread=True, exclusive=True, group="learn", exit_on_error=False)
    def retrain(self, dataset_id: int) -> None:
        def progress(done: int, total: int) -> None:
            self.post_message(Learning(f"retraining: embedding {done}/{total}"))

        report = self.backend.retrain(dataset_id, progress)
        self.post_message(Retrained(report, report.train.cv_accuracy))

    @work(thread=True, exclusive=True, group="accuracy", exit_on_error=False)
    def read_accuracy(self) -> None:
        """The trained model's accuracy, for the status bar (once, when the screen opens)."""
        self.post_message(Retrained(None, self.backend.accuracy(self.info.id)))

    def on_learning(self, message: Learning) -> None:
        if self.learning:
            self.learning = message.text
            self.refresh_panels()

    def on_retrained(self, message: Retrained) -> None:
        self.accuracy = message.accuracy
        if message.report is not None:
            self.learning = ""
            self.notify(retrained_text(message.report), title="retrained", timeout=8)
            self.refresh_proposals()
        self.refresh_panels()

    def refresh_proposals(self) -> None:
        """Show the new proposals of the image on screen, and where it now stands."""
        if self.view is not None and not self.moving and self.draft is None:
            self.go("id", self.view.id)
        self.schedule_counts()

    def learning_failed(self) -> None:
        """The retrain worker failed (its error is shown by the screen's handler)."""
        self.learning = ""
        self.refresh_panels()


def retrained_text(report: Any) -> str:
    """One notification for a RetrainReport: accuracy, proposals, vectors added, any note."""
    train = report.train
    text = (
        f"cross-validated accuracy {train.cv_accuracy:.3f} on {train.labelled} labels; "
        f"{train.proposed} images got a proposal"
    )
    if report.embedded:
        text += f"; {report.embedded} new images embedded ({report.model})"
    return f"{text}. {report.note}" if report.note else text
