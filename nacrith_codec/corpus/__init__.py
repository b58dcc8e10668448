"""Many files, and big files, as independent block tasks: the core any runner drives.

plan.py turns inputs (paths, fsspec URLs, directories, globs) into jobs: a file's
blocks as tasks and its output written in block order, framed by the codec's one
StreamWriter; tasks.py is what a task does (code one block, or decode one, pure
functions of their arguments); report.py what became of every file.  The Dask plugin
(plugins/dask_cluster.py) only submits the tasks and hands their results back.
"""
