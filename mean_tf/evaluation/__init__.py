"""Measuring predictions: the paper's CLTV metrics in NumPy (`metrics`), their figures (`plots`), and what a
trained MEAN's attention and DAM say about its customers (`explain`).

May import: errors, contract, transform.
"""
