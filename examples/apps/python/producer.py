#!/usr/bin/env python3
"""The sign-up producer as the RabbitMQ tutorials write it, with pika.

It declares its queue before every publish, durable=True and nothing
else. That declaration stays equivalent to the queue `mqctl topology
apply` creates because mqctl keeps the retry and dead-letter settings in
a policy (mqctl.new_user_tasks), not in x-arguments; with x-arguments it
would get 406 PRECONDITION_FAILED. Publishes are confirmed and mandatory,
so a nacked or unroutable message is an error rather than a silent loss.

    producer.py [--url URL] COUNT

URL is an AMQP URL with the vhost (default $AMQP_URL). Publishes user ids
user-0001 ... user-COUNT, prints each one once the broker confirmed it,
and exits 1 on any error, a 406 included.
"""
import argparse
import json
import os
import sys

import pika

QUEUE = 'new_user_tasks'


def main():
    ap = argparse.ArgumentParser(description='Publish COUNT sign-ups to ' + QUEUE)
    ap.add_argument('--url', default=os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F'))
    ap.add_argument('count', type=int)
    args = ap.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    # From here basic_publish waits for the broker's ack, and raises on a
    # nack (NackError) or a mandatory return (UnroutableError).
    channel.confirm_delivery()
    for i in range(1, args.count + 1):
        user_id = 'user-%04d' % i
        channel.queue_declare(queue=QUEUE, durable=True)
        channel.basic_publish(
            exchange='',
            routing_key=QUEUE,
            body=json.dumps({'user_id': user_id, 'email': user_id + '@example.com'}),
            properties=pika.BasicProperties(
                delivery_mode=2,  # persistent
                content_type='application/json',
                message_id=user_id,
            ),
            mandatory=True,
        )
        print(user_id, flush=True)
    connection.close()


if __name__ == '__main__':
    try:
        main()
    except Exception as e:  # a 406 arrives as ChannelClosedByBroker
        sys.exit('producer: %r' % (e,))
