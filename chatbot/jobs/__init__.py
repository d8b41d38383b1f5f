"""Background jobs an admin starts from the console: a training run or an index
rebuild, each in its own OS process so that customers are still served while it
works and it survives the browser tab (and the web server) going away.

`control` starts, cancels and reads jobs (and notices a worker that died without a
word); `worker` is what runs inside the job's process (`chatbot jobs run ID`);
`progress` turns training events into the job's progress record; `repository` holds
the queries on the `jobs` table. Training and indexing themselves are
`chatbot.training`'s and `chatbot.retrieval`'s jobs.
"""

from __future__ import annotations

from chatbot.errors import ChatbotError


class JobError(ChatbotError):
    """A job that cannot be started (another one of its kind runs, bad parameters) or
    cancelled (unknown, already finished, running on another machine)."""


from chatbot.jobs.control import cancel_job, get_job, list_jobs, start_job  # noqa: E402
from chatbot.jobs.records import JobInfo  # noqa: E402

__all__ = ["JobError", "JobInfo", "cancel_job", "get_job", "list_jobs", "start_job"]
