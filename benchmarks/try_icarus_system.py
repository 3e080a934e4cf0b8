import time, sys, tempfile, shutil
from sim import rtl
from sim.workload import prepare
w = prepare(preset="rtl-2x2", model="tiny-8x2", tokens=16, routing_spec="mixtral:c4", strategy="fse-dp-paired")
t = time.time()
r = rtl.run([w], sim=sys.argv[1], progress=print)[0]
print(sys.argv[1], r.cycles, r.bit_exact, time.time() - t)
print(r.mismatches)
import numpy as np
