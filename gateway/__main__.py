from gateway.cli import main

# guarded: the worker process (multiprocessing "spawn") imports this module again
if __name__ == "__main__":
    main(prog_name="emilanowek")
