# Device entry point: read the provisioned config from flash and run the evaluator.
# On the unix port the current directory is the device's flash (its data folder).
import json
import asyncio


def load_board(cfg):
    # One board layer per hardware; the unix port's is the simulator's board.
    from board_unix import Board
    return Board(cfg)


def main():
    try:
        with open("config.json") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        print("pingjia: no usable config.json in flash:", e)
        return
    from evaluator import Evaluator
    asyncio.run(Evaluator(load_board(cfg), cfg).run())


main()
