"""Run named jobs with dependencies on a few worker slots (one core each), printing progress and per-job times."""
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Job:
    """`fn(results)` runs once every job named in `after` has finished; `results` maps job names to return values."""
    name: str
    fn: Callable
    after: tuple = ()
    describe: Callable = field(default=lambda result: '')  # a short summary of the result for the progress line


def run_jobs(jobs: list, workers: int = 2, log=print) -> tuple:
    """Run `jobs` (listed in a valid order of their dependencies) on `workers` slots; ({name: result},
    {name: seconds}). The first failure stops new starts, waits for running jobs and is raised."""
    names = [j.name for j in jobs]
    unknown = {d for j in jobs for d in j.after} - set(names)
    if unknown or len(set(names)) != len(names):
        raise ValueError(f'jobs: unknown dependencies {sorted(unknown)} or repeated names in {names}')
    pending, running, results, times, t0 = list(jobs), {}, {}, {}, time.time()
    with ThreadPoolExecutor(workers) as pool:
        while pending or running:
            for job in [j for j in pending if all(d in results for d in j.after)][:workers - len(running)]:
                pending.remove(job)
                log(f'[{time.time() - t0:6.0f}s] start  {job.name}')
                running[pool.submit(job.fn, dict(results))] = (job, time.time())
            if not running:
                raise RuntimeError(f'jobs {[j.name for j in pending]} wait on jobs that never finish')
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job, start = running.pop(future)
                if future.exception() is not None:
                    pending.clear()
                    wait(running)
                    raise future.exception()
                results[job.name], times[job.name] = future.result(), round(time.time() - start, 1)
                log(f'[{time.time() - t0:6.0f}s] done   {job.name} in {times[job.name]:.0f}s '
                    f'{job.describe(results[job.name])}')
    return results, times
