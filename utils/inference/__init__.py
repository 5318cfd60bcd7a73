"""The inference floor: what test.py, the notebook, movies, media/ and export run.

segmenter.py   Segmenter: a run folder loaded once, numpy images of any size in, class maps out
geometry.py    test-time resize / pad and its inverse, multi-scale and flip
folding.py     freezing a graph and folding batch norms into the convolutions
export.py      the SavedModel of a run folder
deploy.py      TFLite (fp32 / fp16 / int8) and ONNX files of the folded net, with export.json
runtimes.py    exported models (LiteRT, onnxruntime, SavedModel) behind the Segmenter's interface
evaluation.py  scoring a split at original resolution, bootstrap error bars, checkpoint spread
movie.py       reading and writing videos and GIFs, segmenting a movie (legend strip under the frames)
pictures.py    prediction panels, overlays, the confusion-matrix heat map
predictions.py raw predictions on disk (test.py --save_masks): class-index PNGs, float16 probabilities
result_folders.py  result folder names that say what was scored; other settings' results never overwritten
"""
