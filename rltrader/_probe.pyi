import numpy as np
import numpy.typing as npt

LINE: int
PER_LINE: int

def chase_cycle(n_lines: int, seed: int = 0) -> npt.NDArray[np.int64]: ...
def memory_latency_ns(nbytes: int, loads: int = 2000000, seed: int = 0) -> float: ...
